"""Stage `evaluate`: generalised zero-shot metrics and confusion matrix of every result of every method
(zsseg/methods.py) on val.

The metrics directory holds only the JSON files, so that `dvc metrics` reads nothing else.
"""

import json
from pathlib import Path

import pandas as pd

from zsseg.classifier import load_classifier
from zsseg.atomic import atomic_path
from zsseg.evaluation import evaluate_classifier
from zsseg.feature_cache import open_cache
from zsseg.methods import results
from zsseg.metrics import segmentation_metrics
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "device", "evaluate", "recursion.rounds")
ARGUMENTS = {"features": "directory written by the features stage",
             "run": "the run directory, which holds each method's output (zsseg/methods.py)",
             "output": "metrics directory: one JSON file per result",
             "confusion": "directory for one confusion matrix CSV per result"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("evaluate", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        cache = open_cache(Path(stage.args.features) / "val.h5", stage.params)
        with (atomic_path(stage.args.output, directory=True) as directory,
              atomic_path(stage.args.confusion, directory=True) as confusion_directory):
            for result in results(sorted(stage.params.recursion.rounds)):
                classifier = load_classifier(Path(stage.args.run) / result.directory)
                confusion = evaluate_classifier(cache, classifier, stage.params.evaluate.batch_size, stage.device)
                metrics = segmentation_metrics(confusion, cache.class_names, cache.unseen)
                stage.log.info("%s (%s, round %d): seen mIoU %s, unseen mIoU %s, hIoU %s", result.metrics,
                               result.method.name, result.round, metrics["seen_miou"], metrics["unseen_miou"],
                               metrics["hiou"])
                (directory / f"{result.metrics}.json").write_text(json.dumps(metrics, indent=2) + "\n")
                frame = pd.DataFrame(confusion, index=cache.class_names, columns=cache.class_names)
                frame.index.name = "ground_truth"
                frame.to_csv(confusion_directory / f"{result.metrics}.csv")


if __name__ == "__main__":
    main()
