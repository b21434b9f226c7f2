"""Stage `evaluate`: generalised zero-shot metrics and confusion matrix of every round, and of ZS5Net
self-training, on val.

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
    parser.add_argument("--unseen", type=int, help="K, replacing dataset.unseen (a cell of the K grid)")
    parser.add_argument("--features", required=True, help="directory written by the features stage")
    parser.add_argument("--rounds", required=True, help="directory holding one subdirectory per round")
    parser.add_argument("--self-training", required=True, help="directory written by the self_training stage")
    parser.add_argument("--output", required=True, help="metrics directory: round_<r>.json, self_training.json")
    parser.add_argument("--confusion", required=True, help="directory for round_<r>.csv confusion matrices")
    args = parser.parse_args(argv)
    log = stage_logger("evaluate")

    def body() -> None:
        params = load_params(args.params, args.unseen)
        device = resolve_device(params.device)
        configure_torch(params.threads, params.seed)
        cache = FeatureCache(Path(args.features) / "val.h5", params.section_hash(*CACHE_SECTIONS))
        with (atomic_path(args.output, directory=True) as directory,
              atomic_path(args.confusion, directory=True) as confusion_directory):
            runs = {f"round_{r}": Path(args.rounds) / str(r) for r in params.recursion.all_rounds()}
            runs["self_training"] = Path(args.self_training)
            for name, run_directory in runs.items():
                confusion = evaluate_classifier(cache, load_classifier(run_directory), params.evaluate.batch_size,
                                                device)
                metrics = segmentation_metrics(confusion, cache.class_names, cache.unseen)
                log.info("%s: seen mIoU %s, unseen mIoU %s, hIoU %s", name, metrics["seen_miou"],
                         metrics["unseen_miou"], metrics["hiou"])
                (directory / f"{name}.json").write_text(json.dumps(metrics, indent=2) + "\n")
                frame = pd.DataFrame(confusion, index=cache.class_names, columns=cache.class_names)
                frame.index.name = "ground_truth"
                frame.to_csv(confusion_directory / f"{name}.csv")

    run_stage("evaluate", body)


if __name__ == "__main__":
    main()
