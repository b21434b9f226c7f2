"""Stage `round_0`: plain ZS3Net (GMMN generator on seen features, classifier on real seen + generated unseen)."""

from pathlib import Path

from zsseg.embeddings import load_embeddings
from zsseg.atomic import atomic_path
from zsseg.feature_cache import open_cache
from zsseg.rounds import save_round, train_round_zero
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "device", "generator", "classifier", "evaluate.batch_size")
ARGUMENTS = {"features": "directory written by the features stage",
             "embeddings": ".npz written by the embed stage",
             "output": "round directory to write"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("round_0", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        cache = open_cache(Path(stage.args.features) / "train.h5", stage.params)
        embeddings = load_embeddings(stage.args.embeddings, cache.class_names)
        result = train_round_zero(stage.params, cache, embeddings, stage.device, stage.log.info)
        with atomic_path(stage.args.output, directory=True) as directory:
            save_round(directory, result, cache.class_names, cache.unseen)


if __name__ == "__main__":
    main()
