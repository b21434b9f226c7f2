"""Stage `mining_precision`: per mining result, round and unseen class, how many pseudo-features it mined and
which share truly belongs to their class (zsseg/mining_precision.py). A diagnostic for the report: it reads
the ceiling's unseen labels, and no training stage reads what it writes."""

from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.feature_cache import open_training_caches
from zsseg.mining_precision import mining_precision
from zsseg.stage import stage_run

PARAMS = ("recursion.rounds",)
ARGUMENTS = {"features": "directory written by the features stage",
             "labels": ".h5 written by the ceiling_labels stage",
             "run": "the run directory, which holds each method's output (zsseg/methods.py)",
             "output": ".csv of one row per method, round and mined class"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("mining_precision", __doc__, PARAMS, ARGUMENTS, argv, uses_torch=False) as stage:
        caches = open_training_caches(stage.args.features, stage.params)
        frame = mining_precision(Path(stage.args.run), caches, Path(stage.args.labels),
                                 sorted(stage.params.recursion.rounds))
        with atomic_path(stage.args.output) as temporary:
            frame.to_csv(temporary, index=False, float_format="%.2f")


if __name__ == "__main__":
    main()
