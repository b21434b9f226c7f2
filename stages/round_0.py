"""Stage `round_0`: plain ZS3Net (GMMN generator on seen features, classifier on real seen + generated unseen)."""

from zsseg.embeddings import load_embeddings
from zsseg.atomic import atomic_path
from zsseg.feature_cache import open_training_caches
from zsseg.rounds import save_round, train_round_zero
from zsseg.sampling import load_seen_samples
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "device", "dataset.background", "generator", "classifier", "evaluate.batch_size")
ARGUMENTS = {"features": "directory written by the features stage",
             "samples": ".h5 written by the samples stage",
             "embeddings": ".npz written by the embed stage",
             "output": "round directory to write"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("round_0", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        caches = open_training_caches(stage.args.features, stage.params)
        embeddings = load_embeddings(stage.args.embeddings, caches.class_names)
        result = train_round_zero(stage.params, caches, load_seen_samples(stage.args.samples, stage.params), embeddings,
                                  stage.device)
        with atomic_path(stage.args.output, directory=True) as directory:
            save_round(directory, result, caches)


if __name__ == "__main__":
    main()
