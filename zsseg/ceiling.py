"""The supervised ceiling: the final classifier on real features of every class, unseen included. It is
an upper bound on what any feature generator can reach with these features, and never a zero-shot
result: it learns from the unseen labels of the training images.

The unseen labels live in their own file, aligned row by row with the pool cache (the unlabelled images),
written by the ``ceiling_labels`` stage and read by the ``ceiling`` stage alone: no zero-shot stage declares
it. The labelled images' pixels carry their labels in the labelled cache.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from zsseg.classifier import train_classifier
from zsseg.config import Params
from zsseg.datasets.folder import FolderDataset
from zsseg.feature_cache import CacheBatch, CacheError, FeatureCache, TrainingCaches
from zsseg.labels import block_labels, ignored_classes
from zsseg.runtime import SeedPurpose, derive_seed
from zsseg.sampling import sample_class_features


def write_ceiling_labels(dataset: FolderDataset, pool: FeatureCache, path: Path) -> None:
    """The true label of every cached pixel of the unlabelled training images (pool.h5), unseen classes
    included, in its row order: the majority label of its block, as the labelled cache computes it, with
    the cache's label purity."""
    purity = float(pool.attrs["label_purity"])
    with h5py.File(pool.path, "r") as cache, h5py.File(path, "w") as handle:
        labels = handle.create_dataset("feature_labels", (pool.pixel_count,), dtype="uint8")
        for index, image_id in enumerate(tqdm(pool.ids, desc="ceiling labels", unit="img")):
            rows = slice(int(pool.image_offsets[index]), int(pool.image_offsets[index + 1]))
            blocks = block_labels(dataset.load_label(image_id), pool.stride, purity, pool.feature_shapes[index])
            labels[rows] = blocks.reshape(-1)[cache["pixels"][rows]]
        handle.attrs["ids"] = json.dumps(pool.ids)


def read_ceiling_labels(path: Path, pool: FeatureCache) -> np.ndarray:
    """The labels ``write_ceiling_labels`` wrote for ``pool``, refused if they were written for other images."""
    with h5py.File(path, "r") as handle:
        if json.loads(handle.attrs["ids"]) != pool.ids:
            raise CacheError(f"{path}: made for other images than {pool.path}; rerun ceiling_labels")
        return handle["feature_labels"][:]


class CeilingPixels:
    """Every cached training pixel with its true label: the labelled cache's pixels as they are, then the
    pool's with their labels from the ceiling's labels file."""

    def __init__(self, caches: TrainingCaches, labels_path: Path) -> None:
        self.pool_labels = torch.from_numpy(read_ceiling_labels(labels_path, caches.pool))
        self.caches, self.feature_dim = caches, caches.feature_dim

    def batch_count(self, batch_size: int) -> int:
        return self.caches.labelled.batch_count(batch_size) + self.caches.pool.batch_count(batch_size)

    def batches(self, batch_size: int) -> Iterator[CacheBatch]:
        yield from self.caches.labelled.batches(batch_size)
        row = 0
        for batch in self.caches.pool.batches(batch_size):
            rows = slice(row, row + batch.features.shape[0])
            row = rows.stop
            yield dataclasses.replace(batch, feature_labels=self.pool_labels[rows])


def train_ceiling(params: Params, caches: TrainingCaches, labels_path: Path, device: torch.device,
                  log: Callable[[str], None]) -> tuple[nn.Linear, dict]:
    """The final classifier on up to ``generator.real_features_per_class`` real features of every class (but
    background with ``dataset.background: ignore``: its pixels are 255 in both label files, and its row is masked)."""
    ignored = ignored_classes(params.dataset.background)
    classes = [c for c in range(len(caches.class_names)) if c not in ignored]
    real = sample_class_features(CeilingPixels(caches, labels_path), classes, params.generator.real_features_per_class,
                                 derive_seed(params.seed, SeedPurpose.CEILING_SAMPLES),
                                 batch_size=params.evaluate.batch_size)
    for c in classes:
        if c not in real:
            log(f"warning: class {caches.class_names[c]!r} has no labelled feature pixel in the training images")
    counts = {caches.class_names[c]: int(real[c].shape[0]) for c in real}
    classifier, classifier_log = train_classifier(real, len(caches.class_names), params.classifier,
                                                  derive_seed(params.seed, SeedPurpose.CEILING_CLASSIFIER), device,
                                                  "ceiling", masked=ignored)
    return classifier, {"real_features": counts, "classifier": classifier_log}
