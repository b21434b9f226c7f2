"""Stage `self_training`: ZS5Net, ZS3Net's self-training baseline, as one stage after round 0."""

from zsseg.classifier import save_classifier
from zsseg.embeddings import load_embeddings
from zsseg.atomic import atomic_path
from zsseg.feature_cache import open_training_caches
from zsseg.sampling import load_seen_samples
from zsseg.self_training import train_self_training
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "device", "dataset.background", "generator.real_features_per_class", "classifier",
          "self_training", "evaluate.batch_size", "recursion.mining_pool")
ARGUMENTS = {"previous": "directory of round 0 (its classifier and generator)",
             "features": "directory written by the features stage",
             "samples": ".h5 written by the samples stage",
             "embeddings": ".npz written by the embed stage",
             "output": "directory for the retrained classifier"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("self_training", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        caches = open_training_caches(stage.args.features, stage.params)
        embeddings = load_embeddings(stage.args.embeddings, caches.class_names)
        samples = load_seen_samples(stage.args.samples, stage.params)
        classifier, training_log = train_self_training(stage.params, stage.args.previous, caches, samples, embeddings,
                                                       stage.device, stage.log.info)
        with atomic_path(stage.args.output, directory=True) as directory:
            save_classifier(directory, classifier, training_log, caches.class_names, caches.unseen)


if __name__ == "__main__":
    main()
