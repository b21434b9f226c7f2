"""Stage `evaluate`: generalised zero-shot metrics and confusion matrix of every round on val.

The metrics directory holds only the JSON files, so that `dvc metrics` reads nothing else.
"""

import argparse
import json
from pathlib import Path

import pandas as pd

from zsseg.atomic import atomic_path
from zsseg.config import load_params
from zsseg.feature_cache import FeatureCache
from zsseg.metrics import segmentation_metrics
from zsseg.rounds import load_classifier
from zsseg.runtime import configure_torch, resolve_device, run_stage, stage_logger
from zsseg.zero_shot import evaluate_classifier
from stages.features import CACHE_SECTIONS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--features", required=True, help="directory written by the features stage")
    parser.add_argument("--rounds", required=True, help="directory holding one subdirectory per round")
    parser.add_argument("--output", required=True, help="metrics directory: round_<r>.json")
    parser.add_argument("--confusion", required=True, help="directory for round_<r>.csv confusion matrices")
    args = parser.parse_args(argv)
    log = stage_logger("evaluate")

    def body() -> None:
        params = load_params(args.params)
        device = resolve_device(params.device)
        configure_torch(params.threads, params.seed)
        cache = FeatureCache(Path(args.features) / "val.h5", params.section_hash(*CACHE_SECTIONS))
        with (atomic_path(args.output, directory=True) as directory,
              atomic_path(args.confusion, directory=True) as confusion_directory):
            for round_index in params.recursion.all_rounds():
                classifier = load_classifier(Path(args.rounds) / str(round_index))
                confusion = evaluate_classifier(cache, classifier, params.evaluate.batch_size, device)
                metrics = segmentation_metrics(confusion, cache.class_names, cache.unseen)
                log.info("round %d: seen mIoU %.1f, unseen mIoU %.1f, hIoU %.1f", round_index,
                         metrics["seen_miou"], metrics["unseen_miou"], metrics["hiou"])
                (directory / f"round_{round_index}.json").write_text(json.dumps(metrics, indent=2) + "\n")
                frame = pd.DataFrame(confusion, index=cache.class_names, columns=cache.class_names)
                frame.index.name = "ground_truth"
                frame.to_csv(confusion_directory / f"round_{round_index}.csv")

    run_stage("evaluate", body)


if __name__ == "__main__":
    main()
