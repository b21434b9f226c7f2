"""Stage `recursive_round@r` (r >= 1): pseudo-features from round r-1, generator retrained with ZS-MMD, new
classifier."""

from zsseg.embeddings import load_embeddings
from zsseg.atomic import atomic_path
from zsseg.feature_cache import open_training_caches
from zsseg.rounds import save_round, train_recursive_round
from zsseg.sampling import load_seen_samples
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "device", "dataset.background", "generator", "classifier", "evaluate.batch_size",
          "recursion.threshold", "recursion.per_class_cap", "recursion.min_count", "recursion.zs_mmd_lambda",
          "recursion.generator_steps", "recursion.mining_pool", "recursion.weighting", "recursion.selection",
          "recursion.per_image_cap", "recursion.allow_empty_rounds", "recursion.pseudo_labels_in_classifier",
          "recursion.thresholds", "recursion.class_top_percent", "recursion.class_threshold_floor", "recursion.guard")
ARGUMENTS = {"round": (int, "round index r >= 1"),
             "previous": "directory of round r-1",
             "features": "directory written by the features stage",
             "samples": ".h5 written by the samples stage",
             "embeddings": ".npz written by the embed stage",
             "output": "round directory to write"}


def main(argv: list[str] | None = None) -> None:
    with stage_run(lambda args: f"round_{args.round}", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        caches = open_training_caches(stage.args.features, stage.params)
        embeddings = load_embeddings(stage.args.embeddings, caches.class_names)
        samples = load_seen_samples(stage.args.samples, stage.params)
        result = train_recursive_round(stage.params, stage.args.round, stage.args.previous, caches, samples, embeddings,
                                       stage.device, stage.log.info)
        with atomic_path(stage.args.output, directory=True) as directory:
            save_round(directory, result, caches)


if __name__ == "__main__":
    main()
