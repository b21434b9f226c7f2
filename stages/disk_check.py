"""Stage `disk_check` (the K grid only): before any cell writes its feature caches, the disk that the cells
still to run will need (predicted, zsseg/disk.py) against the free space of data/'s filesystem. Refuses
when it does not fit, unless table.check_free_space is false; and refuses an explicit list of unseen classes
that the grid's K values would not run (FolderDataset.check_grid_split)."""

import json
from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.datasets.folder import FolderDataset
from zsseg.disk import check_free_space, grid_needs
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "dataset.unseen", "backbone", "features", "generator.real_features_per_class",
          "classifier.sampling", "recursion.rounds", "recursion.per_class_cap", "table")
ARGUMENTS = {"dataset": "directory written by the prepare stage",
             "grid": "directory holding k<K>/s<seed>/ for every K and seed",
             "output": ".json of the need and the free space"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("disk_check", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        params, grid = stage.params, Path(stage.args.grid)
        dataset = FolderDataset(stage.args.dataset)
        dataset.check_grid_split(params.dataset.unseen, params.table.k_values)
        needs = grid_needs(params, dataset, grid, stage.log.info)
        if params.table.check_free_space:
            figures = check_free_space(needs, grid)
        else:
            figures = {"cells": len(needs), "need_bytes": sum(item.still_needed for item in needs),
                       "checked": False}
            stage.log.info("table.check_free_space is false: the free space is not checked")
        stage.log.info("%d cells still to run need about %.2f GB", len(needs), figures["need_bytes"] / 1e9)
        with atomic_path(stage.args.output) as temporary:
            temporary.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
