"""Stage `ceiling_labels`: the true labels of the train cache's feature pixels, unseen classes included, for
the supervised ceiling alone (no zero-shot stage reads this file)."""

from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.ceiling import write_ceiling_labels
from zsseg.datasets.folder import FolderDataset
from zsseg.feature_cache import open_cache
from zsseg.stage import stage_run

PARAMS = ()
ARGUMENTS = {"dataset": "directory written by the prepare stage",
             "features": "directory written by the features stage",
             "output": ".h5 of one label per feature pixel of train.h5, in its order"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("ceiling_labels", __doc__, PARAMS, ARGUMENTS, argv, uses_torch=False) as stage:
        cache = open_cache(Path(stage.args.features) / "train.h5", stage.params)
        with atomic_path(stage.args.output) as temporary:
            write_ceiling_labels(FolderDataset(stage.args.dataset), cache, temporary)


if __name__ == "__main__":
    main()
