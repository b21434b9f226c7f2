"""The supervised ceiling: the final classifier on real features of every class, unseen included. It is
an upper bound on what any feature generator can reach with these features, and never a zero-shot
result: it learns from the unseen labels of the training images.

Those labels live in their own file, aligned row by row with the train cache, written by the
``ceiling_labels`` stage and read by the ``ceiling`` stage alone: no zero-shot stage declares it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import torch
from torch import nn
from tqdm import tqdm

from zsseg.classifier import train_classifier
from zsseg.config import Params
from zsseg.datasets.folder import FolderDataset
from zsseg.feature_cache import CacheBatch, CacheError, FeatureCache
from zsseg.labels import block_labels
from zsseg.runtime import derive_seed
from zsseg.sampling import sample_class_features

# The seed key of the ceiling's samples and classifier, apart from every zero-shot method's.
CEILING_KEY = 2_000_000


def write_ceiling_labels(dataset: FolderDataset, cache: FeatureCache, path: Path) -> None:
    """The true label of every feature pixel of the train cache, unseen classes included, in its row order
    (the majority label of its block, as the cache computes it, with the cache's label purity)."""
    purity = float(cache.attrs["label_purity"])
    with h5py.File(path, "w") as handle:
        labels = handle.create_dataset("feature_labels", (int(cache.feature_offsets[-1]),), dtype="uint8")
        for index, image_id in enumerate(tqdm(cache.ids, desc="ceiling labels", unit="img")):
            label = dataset.load_label(image_id)
            rows = slice(int(cache.feature_offsets[index]), int(cache.feature_offsets[index + 1]))
            labels[rows] = block_labels(label, cache.stride, purity, cache.feature_shapes[index]).reshape(-1)
        handle.attrs["ids"] = json.dumps(cache.ids)


class RelabelledCache:
    """The train cache with every feature pixel's label taken from the ceiling's labels file."""

    def __init__(self, cache: FeatureCache, labels_path: Path) -> None:
        with h5py.File(labels_path, "r") as handle:
            if json.loads(handle.attrs["ids"]) != cache.ids:
                raise CacheError(f"{labels_path}: made for other images than {cache.path}; rerun ceiling_labels")
            self.labels = torch.from_numpy(handle["feature_labels"][:])
        self.cache, self.feature_dim = cache, cache.feature_dim

    def __len__(self) -> int:
        return len(self.cache)

    def batches(self, batch_size: int) -> Iterator[CacheBatch]:
        row = 0
        for batch in self.cache.batches(batch_size):
            rows = slice(row, row + batch.features.shape[0])
            row = rows.stop
            yield dataclasses.replace(batch, feature_labels=self.labels[rows])


def train_ceiling(params: Params, cache: FeatureCache, labels_path: Path, device: torch.device,
                  log: Callable[[str], None]) -> tuple[nn.Linear, dict]:
    """The final classifier on up to ``generator.real_features_per_class`` real features of every class."""
    classes = list(range(len(cache.class_names)))
    real = sample_class_features(RelabelledCache(cache, labels_path), classes,
                                 params.generator.real_features_per_class, derive_seed(params.seed, 1, CEILING_KEY),
                                 batch_size=params.evaluate.batch_size)
    for c in classes:
        if c not in real:
            log(f"warning: class {cache.class_names[c]!r} has no labelled feature pixel in the training images")
    counts = {cache.class_names[c]: int(real[c].shape[0]) for c in real}
    classifier, classifier_log = train_classifier(real, len(classes), params.classifier,
                                                  derive_seed(params.seed, 4, CEILING_KEY), device, "ceiling")
    return classifier, {"real_features": counts, "classifier": classifier_log}
