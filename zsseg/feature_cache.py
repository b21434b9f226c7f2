"""The HDF5 cache of per-pixel backbone features and labels, one file per split.

Images may differ in size (VOC keeps each val image at its own size), so every per-pixel array is
stored flat, image after image, and located through offsets. Schema (``SCHEMA_VERSION`` 2):

- ``features``        (P, D) float16: penultimate features at ``stride``, the pixels of image i in
  rows ``feature_offsets[i]:feature_offsets[i+1]`` (row-major over its (h, w) feature map);
- ``feature_labels``  (P,) uint8: the label of each feature pixel, the majority label of its
  stride x stride block when that label covers at least ``label_purity`` of it, else 255;
- ``labels``          (L,) uint8: full-resolution labels (255 = ignore), for evaluation, located by
  ``label_offsets``;
- ``feature_offsets``, ``label_offsets`` (N+1,) int64 and ``feature_shapes``, ``label_shapes`` (N, 2) int32;
- ``ids``             (N,) UTF-8 strings: image ids;
- ``unlabelled``      (N,) bool: the image holds an unseen pixel (train only; false elsewhere). Such an
  image's ``feature_labels`` and ``labels`` are all 255: nothing of its ground truth is cached.

``features`` is chunked by the pixel count of the first image, so a split of equal-size images has
exactly one image per chunk. Attributes: ``schema_version``, ``split``, ``stride``, ``feature_dim``,
``class_names`` and ``unseen`` (JSON), ``label_purity``, ``backbone``, ``params_hash`` (of the params
that made it) and ``labels`` (``"labelled images only"`` in the train cache, ``"all"`` elsewhere).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from zsseg.errors import InputError

SCHEMA_VERSION = 3
# The params that make a cache: stored as its params_hash, which every reader checks.
CACHE_PARAMS = ("seed", "dataset", "backbone", "features")


class CacheError(InputError):
    """A feature cache is missing, of another schema, or was made by other params."""


class FeatureCacheWriter:
    """Appends images one by one, flushed in groups (resizing HDF5 datasets per image is slow); the
    file is closed even when writing fails."""

    FLUSH_IMAGES = 64

    def __init__(self, path: str | Path, count: int, feature_dim: int, attributes: dict) -> None:
        self.count, self.feature_dim, self.written = count, feature_dim, 0
        self.feature_offsets, self.label_offsets = [0], [0]
        self.pending: dict[str, list[np.ndarray]] = {"features": [], "feature_labels": [], "labels": []}
        self.unlabelled = np.zeros(count, dtype=bool)
        # Written once at the end: three small HDF5 writes per image took longer than the features' own.
        self.ids: list[str] = []
        self.feature_shapes, self.label_shapes = np.zeros((count, 2), np.int32), np.zeros((count, 2), np.int32)
        self.chunk_rows: dict[str, int] = {}
        self.file = h5py.File(path, "w")
        try:
            self.file.create_dataset("ids", (count,), dtype=h5py.string_dtype())
            self.file.create_dataset("feature_shapes", (count, 2), dtype="int32")
            self.file.create_dataset("label_shapes", (count, 2), dtype="int32")
            self.file.attrs["schema_version"] = SCHEMA_VERSION
            for key, value in attributes.items():
                self.file.attrs[key] = json.dumps(value) if isinstance(value, (list, dict, tuple)) else value
        except BaseException:
            self.file.close()
            raise

    def _flush(self) -> None:
        for name, parts in self.pending.items():
            if not parts:
                continue
            values = np.concatenate(parts)
            if name not in self.file:
                self.file.create_dataset(name, (0, *values.shape[1:]), maxshape=(None, *values.shape[1:]),
                                         dtype=values.dtype, chunks=(self.chunk_rows[name], *values.shape[1:]))
            dataset = self.file[name]
            start = dataset.shape[0]
            dataset.resize(start + values.shape[0], axis=0)
            dataset[start:] = values
            parts.clear()

    def write(self, image_id: str, features: np.ndarray, feature_labels: np.ndarray, labels: np.ndarray,
              unlabelled: bool = False) -> None:
        """features (h, w, D), feature_labels (h, w) and labels (H, W) of the next image, and its bit."""
        if self.written >= self.count:
            raise ValueError(f"{self.file.filename}: more than the {self.count} images announced")
        if not np.isfinite(features).all():
            raise FloatingPointError(f"features of image {image_id!r} contain NaN or Inf")
        pixels = features.shape[0] * features.shape[1]
        self.chunk_rows = self.chunk_rows or {"features": pixels, "feature_labels": pixels, "labels": labels.size}
        self.pending["features"].append(features.reshape(pixels, self.feature_dim).astype(np.float16, copy=False))
        self.pending["feature_labels"].append(feature_labels.reshape(-1).astype(np.uint8))
        self.pending["labels"].append(labels.reshape(-1).astype(np.uint8))
        self.feature_offsets.append(self.feature_offsets[-1] + pixels)
        self.label_offsets.append(self.label_offsets[-1] + labels.size)
        self.ids.append(image_id)
        self.feature_shapes[self.written], self.label_shapes[self.written] = features.shape[:2], labels.shape
        self.unlabelled[self.written] = unlabelled
        self.written += 1
        if len(self.pending["features"]) >= self.FLUSH_IMAGES:
            self._flush()

    def __enter__(self) -> "FeatureCacheWriter":
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        try:
            if exc_type is None:
                self._flush()
                if self.written != self.count:
                    raise ValueError(f"{self.file.filename}: {self.written} images written, {self.count} announced")
                self.file["ids"][:] = self.ids
                self.file["feature_shapes"][:] = self.feature_shapes
                self.file["label_shapes"][:] = self.label_shapes
                self.file.create_dataset("feature_offsets", data=np.asarray(self.feature_offsets, dtype=np.int64))
                self.file.create_dataset("label_offsets", data=np.asarray(self.label_offsets, dtype=np.int64))
                self.file.create_dataset("unlabelled", data=self.unlabelled)
        finally:
            self.file.close()


@dataclass
class CacheBatch:
    ids: list[str]
    features: torch.Tensor                 # (P, D) float32, the batch's feature pixels image after image
    feature_labels: torch.Tensor           # (P,) uint8
    feature_shapes: list[tuple[int, int]]  # (h, w) of each image's feature map
    labels: list[torch.Tensor]             # (H, W) uint8 per image, full resolution
    unlabelled: torch.Tensor               # (B,) bool: the image holds an unseen pixel (train)

    def pixel_images(self) -> torch.Tensor:
        """(P,) int64: the index in the batch of the image each feature pixel belongs to."""
        sizes = torch.tensor([h * w for h, w in self.feature_shapes])
        return torch.repeat_interleave(torch.arange(len(sizes)), sizes)

    def image_features(self) -> list[torch.Tensor]:
        """The features of each image as an (h, w, D) tensor."""
        sizes = [h * w for h, w in self.feature_shapes]
        return [part.reshape(h, w, -1) for part, (h, w) in zip(torch.split(self.features, sizes), self.feature_shapes)]


class FeatureCache:
    """Read-only, streaming access to a cache: batches are read slice by slice, never all at once."""

    def __init__(self, path: str | Path, expected_params_hash: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise CacheError(f"{self.path}: feature cache not found; build it with `dvc repro features`")
        with h5py.File(self.path, "r") as handle:
            attrs = dict(handle.attrs)
            if attrs.get("schema_version") != SCHEMA_VERSION:
                raise CacheError(f"{self.path}: schema version {attrs.get('schema_version')} is not "
                                 f"{SCHEMA_VERSION}; rebuild it with `dvc repro features`")
            self.feature_offsets = handle["feature_offsets"][:]
            self.label_offsets = handle["label_offsets"][:]
            self.feature_shapes = [tuple(int(v) for v in shape) for shape in handle["feature_shapes"][:]]
            self.label_shapes = [tuple(int(v) for v in shape) for shape in handle["label_shapes"][:]]
            self.unlabelled = torch.from_numpy(handle["unlabelled"][:].astype(bool))
            self.ids = handle["ids"].asstr()[:].tolist()
        if expected_params_hash is not None and attrs.get("params_hash") != expected_params_hash:
            raise CacheError(f"{self.path}: made by other params (hash {attrs.get('params_hash')}, current "
                             f"{expected_params_hash}); rebuild it with `dvc repro features`")
        self.attrs = attrs
        self.class_names: list[str] = json.loads(attrs["class_names"])
        self.unseen: list[int] = json.loads(attrs["unseen"])
        self.stride = int(attrs["stride"])
        self.feature_dim = int(attrs["feature_dim"])

    def __len__(self) -> int:
        return len(self.feature_shapes)

    def batches(self, batch_size: int, limit: int | None = None) -> Iterator[CacheBatch]:
        count = len(self) if limit is None else min(limit, len(self))
        with h5py.File(self.path, "r") as handle:
            for start in range(0, count, batch_size):
                stop = min(start + batch_size, count)
                first, last = self.feature_offsets[start], self.feature_offsets[stop]
                flat_labels = handle["labels"][self.label_offsets[start]:self.label_offsets[stop]]
                bounds = self.label_offsets[start:stop + 1] - self.label_offsets[start]
                yield CacheBatch(
                    ids=self.ids[start:stop],
                    # torch converts float16 three times faster than numpy, to the same values.
                    features=torch.from_numpy(handle["features"][first:last]).float(),
                    feature_labels=torch.from_numpy(handle["feature_labels"][first:last]),
                    feature_shapes=self.feature_shapes[start:stop],
                    labels=[torch.from_numpy(flat_labels[bounds[i]:bounds[i + 1]].reshape(self.label_shapes[start + i]))
                            for i in range(stop - start)],
                    unlabelled=self.unlabelled[start:stop],
                )


def cache_params_hash(params: Any) -> str:
    """The hash of the params that make a cache (``CACHE_PARAMS``), as stored in its ``params_hash``."""
    return params.section_hash(*CACHE_PARAMS)


def open_cache(path: str | Path, params: Any) -> FeatureCache:
    """The cache at ``path``, refused unless the current params made it."""
    return FeatureCache(path, cache_params_hash(params))
