"""Stage `ceiling`: the supervised ceiling, an upper bound that uses unseen labels (never a zero-shot result):
the final classifier on real features of every class of the same frozen backbone and training images."""

from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.ceiling import train_ceiling
from zsseg.classifier import save_classifier
from zsseg.feature_cache import open_training_caches
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "device", "dataset.background", "generator.real_features_per_class", "classifier",
          "evaluate.batch_size")
ARGUMENTS = {"features": "directory written by the features stage",
             "labels": ".h5 written by the ceiling_labels stage",
             "output": "directory for the classifier"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("ceiling", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        caches = open_training_caches(stage.args.features, stage.params)
        classifier, log = train_ceiling(stage.params, caches, Path(stage.args.labels), stage.device, stage.log.info)
        with atomic_path(stage.args.output, directory=True) as directory:
            save_classifier(directory, classifier, log, caches.class_names, caches.unseen)


if __name__ == "__main__":
    main()
