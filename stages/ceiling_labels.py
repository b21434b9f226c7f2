"""Stage `ceiling_labels`: the true labels of the pool cache's feature pixels (the unlabelled training images),
unseen classes included, for the supervised ceiling alone (no zero-shot stage reads this file)."""

from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.ceiling import write_ceiling_labels
from zsseg.datasets.folder import FolderDataset
from zsseg.feature_cache import POOL_FILE, open_cache
from zsseg.stage import stage_run

PARAMS = ("dataset.background",)
ARGUMENTS = {"dataset": "directory written by the prepare stage",
             "features": "directory written by the features stage",
             "output": ".h5 of one label per feature pixel of pool.h5, in its order"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("ceiling_labels", __doc__, PARAMS, ARGUMENTS, argv, uses_torch=False) as stage:
        pool = open_cache(Path(stage.args.features) / POOL_FILE, stage.params)
        with atomic_path(stage.args.output) as temporary:
            write_ceiling_labels(FolderDataset(stage.args.dataset, stage.params.dataset.background), pool,
                                 temporary)


if __name__ == "__main__":
    main()
