"""Stage `evaluate`: generalised zero-shot metrics and confusion matrix of every result of every method
(zsseg/methods.py), on val for the report and on dev for tuning, from the network's features of each image.

The metrics directories hold the full JSON file of every result, per-class IoUs included; the headline
file, each method's final hIoU, unseen and seen mIoU on val and dev, is what DVC declares as metrics, so
that `dvc exp show` and `dvc metrics diff` fit on a screen (docs/pipeline.md).

With test-time augmentation (`evaluate.scales`, `evaluate.flip`; none by default) the whole network runs on
every rescaled and flipped view of each image, and the encode stage's shared maps (scale 1 only) are not read.
"""

import json
from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.datasets.folder import FolderDataset
from zsseg.dense_prediction import TestTimeAugmentation, augmented
from zsseg.encoder_maps import shared_maps
from zsseg.evaluation import evaluate_run, headline_metrics
from zsseg.feature_extraction import split_features, split_images
from zsseg.metrics import write_confusion_csv
from zsseg.network import NETWORK_FILE, load_network
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "device", "dataset.unseen", "dataset.background", "backbone", "features.batch_size",
          "evaluate", "recursion.rounds")
ARGUMENTS = {"dataset": "directory written by the prepare stage",
             "backbone": "directory written by the backbone stage",
             "encoder": "encoder maps written by the encode stage",
             "run": "the run directory, which holds each method's output (zsseg/methods.py)",
             "output": "val metrics directory: one JSON file per result",
             "confusion": "directory for one val confusion matrix CSV per result",
             "dev_output": "dev metrics directory (empty when the dataset has no dev split)",
             "headline": "JSON file of each method's final hIoU, unseen and seen mIoU on val and dev"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("evaluate", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        args, params = stage.args, stage.params
        dataset = FolderDataset(args.dataset, params.dataset.background)
        class_split = dataset.class_split(params.dataset.unseen)
        network, _ = load_network(Path(args.backbone) / NETWORK_FILE, stage.device)
        maps = shared_maps(args.encoder, params.backbone)
        rounds = sorted(params.recursion.rounds)
        augmentation = None
        if augmented(params.evaluate.scales, params.evaluate.flip):
            augmentation = TestTimeAugmentation.of_network(network, params.evaluate.scales, params.evaluate.flip,
                                                           stage.device, params.backbone.mixed_precision)
            stage.log.info("test-time augmentation: scales %s%s, %d passes of the whole network per image%s",
                           params.evaluate.scales, ", each also flipped" if params.evaluate.flip else "",
                           augmentation.views, ", the shared encoder maps unread" if maps is not None else "")
        metrics_by_split: dict[str, dict[str, dict]] = {}
        with (atomic_path(args.output, directory=True) as directory,
              atomic_path(args.confusion, directory=True) as confusion_directory,
              atomic_path(args.dev_output, directory=True) as dev_directory,
              atomic_path(args.headline) as headline):
            for split, metrics_directory in (("val", directory), ("dev", dev_directory)):
                if split == "dev" and not dataset.has_split(split):
                    continue
                if augmentation is None:
                    batches = split_features(network, dataset, split, params.features.batch_size, stage.device,
                                             params.backbone.mixed_precision, maps, workers=params.backbone.workers)
                else:
                    batches = split_images(dataset, split, params.features.batch_size, params.backbone.workers)
                for result, metrics, confusion in evaluate_run(batches, class_split, Path(args.run), rounds,
                                                               params.evaluate.absent_classes, stage.device,
                                                               augmentation):
                    stage.log.info("%s %s (%s, round %d): seen mIoU %s, unseen mIoU %s, hIoU %s", split,
                                   result.metrics, result.method.name, result.round, metrics["seen_miou"],
                                   metrics["unseen_miou"], metrics["hiou"])
                    (metrics_directory / f"{result.metrics}.json").write_text(json.dumps(metrics, indent=2) + "\n")
                    metrics_by_split.setdefault(split, {})[result.metrics] = metrics
                    if split == "val":
                        write_confusion_csv(confusion_directory / f"{result.metrics}.csv", confusion,
                                            class_split.names)
            headline.write_text(json.dumps(headline_metrics(metrics_by_split, rounds), indent=2) + "\n")


if __name__ == "__main__":
    main()
