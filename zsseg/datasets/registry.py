"""Every dataset the `prepare` stage knows, by its ``dataset.name``: one entry per adapter module."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from zsseg.config import ParamsError, choose
from zsseg.datasets import cocostuff, context, demo, folder, voc
from zsseg.datasets.folder import SOURCE_FILE, DatasetAdapter, DatasetError

DATASETS: dict[str, DatasetAdapter] = {adapter.name: adapter for adapter in
                                       (demo.ADAPTER, folder.ADAPTER, voc.ADAPTER, context.ADAPTER,
                                        context.CAGNET_ADAPTER, cocostuff.ADAPTER)}


def check_background(name: str, background: str) -> None:
    """Refuse ``dataset.background: ignore`` for a dataset without a background class, before any work."""
    adapter = choose(DATASETS, "dataset.name", name)
    if background == "ignore" and not adapter.has_background:
        raise ParamsError(f"params.yaml: dataset.background = 'ignore': dataset {name!r} has no background class to "
                          f"ignore (its class 0 is a class of its own, and every pixel is one of its classes or "
                          f"unlabelled, 255); set dataset.background: include")


def prepare_dataset(name: str, root: str | Path, output: Path, workers: int, log: Callable[[str], None]) -> None:
    """Write the folder-format view of dataset ``name`` at ``root`` into ``output`` (a fresh directory),
    with a note of where it came from (``source.json``)."""
    adapter = choose(DATASETS, "dataset.name", name)
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset.root = {str(root)!r}: directory not found")
    adapter.prepare(root, output, workers, log)
    (output / SOURCE_FILE).write_text(json.dumps({"dataset": name, "root": str(root),
                                                  "imagenet_overlap": adapter.imagenet_overlap}, indent=2) + "\n")
