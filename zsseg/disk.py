"""What a grid cell writes to disk, predicted before it runs, and the check that the cells still to run fit.

The prediction counts, per cell (one K and one seed): the two training caches (every train image's feature
pixels at the network's stride, the cached share of them, at the stored precision), the backbone's weights,
the seen-class samples, the pseudo-features of every recursive round and ablation round at their caps, and
the ceiling's labels. Which train images are unlabelled at K is read from their label maps; nothing of it
reaches a training stage. Metrics, logs, generators and classifiers are a few MB and counted as such.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from zsseg.config import Params
from zsseg.datasets.folder import FolderDataset
from zsseg.errors import InputError
from zsseg.feature_cache import precision_datasets
from zsseg.network import ARCHITECTURES
from zsseg.pipeline import grid_cell, reading_cell, stage

# Generators, classifiers, logs, metrics and confusion matrices of one cell: a few MB, counted as this much.
SMALL_FILES_BYTES = 20_000_000


class DiskSpaceError(InputError):
    """The cells still to run need more space than data/'s filesystem has free."""


@dataclass(frozen=True)
class TrainImage:
    shape: tuple[int, int]    # (H, W) of its label
    classes: frozenset[int]   # the classes present in its label


def train_images(dataset: FolderDataset) -> list[TrainImage]:
    """Every train image's size and classes, from its label map."""
    found = []
    for image_id in tqdm(dataset.ids("train"), desc="train labels", unit="img", leave=False):
        with Image.open(dataset.label_path(image_id)) as image:
            label = np.asarray(image)
        found.append(TrainImage(label.shape, frozenset(np.unique(label).tolist())))
    return found


def network_shape(params: Params) -> tuple[int, int]:
    """(stride, number of parameters) of ``backbone.arch``, built on the meta device: no memory, no weights."""
    backbone = params.backbone
    with torch.device("meta"):
        encoder, head, stride = ARCHITECTURES[backbone.arch].build(backbone.feature_dim, backbone.aspp_rates, None)
        classifier = torch.nn.Conv2d(backbone.feature_dim, 1, 1)
    return stride, sum(p.numel() for module in (encoder, head, classifier) for p in module.parameters())


def pixel_bytes(params: Params) -> int:
    """The bytes of one cached feature pixel: its features at ``features.precision`` and its position."""
    codec = precision_datasets(params.backbone.feature_dim)[params.features.precision]
    return sum(np.dtype(dtype).itemsize * math.prod(shape) for dtype, shape in codec.datasets.values()) + 4


def cell_bytes(params: Params, images: Sequence[TrainImage], unseen: Sequence[int]) -> dict[str, int]:
    """The predicted bytes of a cell, by what writes them."""
    stride, parameters = network_shape(params)
    per_pixel = pixel_bytes(params)
    unseen_set = set(unseen)
    labelled = pool = 0
    for image in images:
        pixels = math.ceil(image.shape[0] / stride) * math.ceil(image.shape[1] / stride)
        if image.classes & unseen_set:
            pool += pixels
        else:
            labelled += pixels
    pool_rows = pool * params.features.pool_share
    seen_classes = len({c for image in images for c in image.classes} - unseen_set - {255})
    rounds = len(params.recursion.rounds)
    # The recursive rounds, and each ablation's rounds (zsseg/methods.py): at most per_class_cap per class each.
    pseudo_rows = 3 * rounds * params.recursion.per_class_cap * len(unseen)
    return {
        "features": int(labelled * params.features.labelled_share * (per_pixel + 1) + pool_rows * per_pixel),
        "backbone": 4 * parameters,
        # The generator's balanced sample, and the classifier's when it is drawn apart (classifier.sampling).
        "samples": (1 + (params.classifier.sampling != "balanced")) * params.generator.real_features_per_class
        * seen_classes * per_pixel,
        "pseudo-features": pseudo_rows * (per_pixel + 16),
        "ceiling labels": int(pool_rows),
        "small files": SMALL_FILES_BYTES,
    }


def directory_bytes(path: Path) -> int:
    """The bytes of the file ``path``, or of every file under the directory ``path``; 0 if it does not exist."""
    if path.is_file():
        return path.stat().st_size
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file()) if path.is_dir() else 0


@dataclass(frozen=True)
class CellNeed:
    cell: Path
    predicted: int    # everything the cell writes
    written: int      # what it has written already

    @property
    def still_needed(self) -> int:
        return max(0, self.predicted - self.written)


# What a cell that reads another cell's backbone and cache (table.backbone_per_seed: false) does not write.
SHARED_PARTS = ("features", "backbone")


def grid_needs(params: Params, dataset: FolderDataset, grid: Path, log: Callable[[str], None]) -> list[CellNeed]:
    """The need of every cell of the grid under ``grid`` whose metrics are not written yet."""
    cells = {grid_cell(grid, k, seed): (k, seed) for k in params.table.k_values for seed in params.table.seeds}
    pending = {cell: k for cell, (k, _) in cells.items() if not (cell / "metrics").is_dir()}
    if not pending:
        return []
    images = train_images(dataset)
    by_k = {k: cell_bytes(params, images, dataset.class_split(k).unseen) for k in set(pending.values())}
    for k, parts in sorted(by_k.items()):
        log(f"K = {k}: a cell writes about {sum(parts.values()) / 1e9:.2f} GB ("
            + ", ".join(f"{name} {size / 1e9:.2f}" for name, size in parts.items()) + ")")
    backbone = stage("backbone").outputs["output"]

    def predicted(cell: Path, k: int) -> int:
        borrows = reading_cell(params.table, backbone, *cells[cell], grid) != cell
        return sum(size for name, size in by_k[k].items() if not borrows or name not in SHARED_PARTS)

    return [CellNeed(cell, predicted(cell, k), directory_bytes(cell)) for cell, k in pending.items()]


def check_free_space(needs: Sequence[CellNeed], data: Path, free: int | None = None) -> dict:
    """Refuse when the cells still to run need more than the free space of ``data``'s filesystem; the
    figures, when they fit."""
    need = sum(item.still_needed for item in needs)
    free = shutil.disk_usage(data).free if free is None else free
    if need > free:
        raise DiskSpaceError(
            f"{data}: the {len(needs)} grid cells still to run need about {need / 1e9:.1f} GB, but its filesystem "
            f"has {free / 1e9:.1f} GB free. Free some space, or write less per cell (features.pool_share, "
            f"features.labelled_share, features.precision: uint8), or run fewer cells (table.k_values, "
            f"table.seeds); to run anyway, set table.check_free_space: false")
    return {"cells": len(needs), "need_bytes": need, "free_bytes": free,
            "per_cell": {str(item.cell): item.still_needed for item in needs}}
