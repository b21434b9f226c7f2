"""Stage `samples`: the real seen-class features every method trains on, drawn once per run from the labelled
cache: the generator's balanced sample and the classifier's (classifier.sampling)."""

from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.feature_cache import LABELLED_FILE, open_cache
from zsseg.sampling import draw_seen_samples, samples_params_hash, save_seen_samples
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "dataset.background", "generator.real_features_per_class", "classifier.sampling",
          "evaluate.batch_size")
ARGUMENTS = {"features": "directory written by the features stage",
             "output": ".h5 of the samples"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("samples", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        labelled = open_cache(Path(stage.args.features) / LABELLED_FILE, stage.params)
        samples = draw_seen_samples(stage.params, labelled, stage.log.info)
        with atomic_path(stage.args.output) as temporary:
            save_seen_samples(temporary, samples, str(labelled.attrs["precision"]), labelled.feature_dim,
                              samples_params_hash(stage.params))


if __name__ == "__main__":
    main()
