"""Stage `evaluate`: generalised zero-shot metrics and confusion matrix of every result of every method
(zsseg/methods.py), on val for the report and on dev for tuning.

The metrics directories hold only the JSON files, so that `dvc metrics` reads nothing else.
"""

import json
from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.evaluation import evaluate_run
from zsseg.feature_cache import open_cache
from zsseg.metrics import write_confusion_csv
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "device", "evaluate", "recursion.rounds")
ARGUMENTS = {"features": "directory written by the features stage",
             "run": "the run directory, which holds each method's output (zsseg/methods.py)",
             "output": "val metrics directory: one JSON file per result",
             "confusion": "directory for one val confusion matrix CSV per result",
             "dev_output": "dev metrics directory (empty when the dataset has no dev split)"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("evaluate", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        args, evaluate = stage.args, stage.params.evaluate
        rounds = sorted(stage.params.recursion.rounds)
        with (atomic_path(args.output, directory=True) as directory,
              atomic_path(args.confusion, directory=True) as confusion_directory,
              atomic_path(args.dev_output, directory=True) as dev_directory):
            for split, metrics_directory in (("val", directory), ("dev", dev_directory)):
                path = Path(args.features) / f"{split}.h5"
                if split == "dev" and not path.is_file():
                    continue
                cache = open_cache(path, stage.params)
                for result, metrics, confusion in evaluate_run(cache, Path(args.run), rounds, evaluate.batch_size,
                                                               evaluate.absent_classes, stage.device):
                    stage.log.info("%s %s (%s, round %d): seen mIoU %s, unseen mIoU %s, hIoU %s", split,
                                   result.metrics, result.method.name, result.round, metrics["seen_miou"],
                                   metrics["unseen_miou"], metrics["hiou"])
                    (metrics_directory / f"{result.metrics}.json").write_text(json.dumps(metrics, indent=2) + "\n")
                    if split == "val":
                        write_confusion_csv(confusion_directory / f"{result.metrics}.csv", confusion,
                                            cache.class_names)


if __name__ == "__main__":
    main()
