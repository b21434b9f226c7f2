"""The HDF5 cache of per-pixel backbone features and labels, one file per split.

Schema (``SCHEMA_VERSION`` 1), all datasets chunked one image per chunk:

- ``features``        (N, H, W, D) float16: penultimate features at ``stride`` (channels last, so one
  image reads as H*W contiguous feature vectors);
- ``feature_labels``  (N, H, W) uint8: the label of each feature pixel, the majority label of its
  stride x stride block when that label covers at least ``label_purity`` of it, else 255;
- ``labels``          (N, h, w) uint8: full-resolution labels (255 = ignore), used for evaluation;
- ``ids``             (N,) UTF-8 strings: image ids.

Attributes: ``schema_version``, ``split``, ``stride``, ``feature_dim``, ``class_names`` and ``unseen``
(JSON), ``label_purity``, ``params_hash`` (of the params that made it), ``unseen_labels``
(``"ignored"`` in the train cache, where every unseen label is 255, ``"kept"`` in val).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from zsseg.metrics import IGNORE_INDEX

SCHEMA_VERSION = 1


class CacheError(ValueError):
    """A feature cache is missing, of another schema, or was made by other params."""


def block_labels(label: np.ndarray, stride: int, purity: float) -> np.ndarray:
    """The majority label of each stride x stride block, or 255 where it covers less than ``purity``."""
    height, width = label.shape[0] // stride, label.shape[1] // stride
    blocks = label[:height * stride, :width * stride].reshape(height, stride, width, stride)
    blocks = blocks.transpose(0, 2, 1, 3).reshape(height, width, stride * stride)
    counts = np.zeros((height, width, 256), dtype=np.int32)
    for value in np.unique(blocks):
        counts[..., value] = (blocks == value).sum(axis=2)
    majority = counts.argmax(axis=2).astype(np.uint8)
    share = counts.max(axis=2) / float(stride * stride)
    return np.where(share >= purity, majority, IGNORE_INDEX).astype(np.uint8)


class FeatureCacheWriter:
    """Writes a cache image by image; the file is closed even when writing fails."""

    def __init__(self, path: str | Path, count: int, feature_shape: tuple[int, int, int],
                 label_shape: tuple[int, int], attributes: dict) -> None:
        height, width, dim = feature_shape
        self.file = h5py.File(path, "w")
        try:
            self.file.create_dataset("features", (count, height, width, dim), dtype="float16",
                                     chunks=(1, height, width, dim))
            self.file.create_dataset("feature_labels", (count, height, width), dtype="uint8",
                                     chunks=(1, height, width))
            self.file.create_dataset("labels", (count, *label_shape), dtype="uint8", chunks=(1, *label_shape))
            self.file.create_dataset("ids", (count,), dtype=h5py.string_dtype())
            self.file.attrs["schema_version"] = SCHEMA_VERSION
            for key, value in attributes.items():
                self.file.attrs[key] = json.dumps(value) if isinstance(value, (list, dict, tuple)) else value
        except BaseException:
            self.file.close()
            raise

    def write(self, index: int, image_id: str, features: np.ndarray, feature_labels: np.ndarray,
              labels: np.ndarray) -> None:
        if not np.isfinite(features).all():
            raise FloatingPointError(f"features of image {image_id!r} contain NaN or Inf")
        self.file["features"][index] = features.astype(np.float16)
        self.file["feature_labels"][index] = feature_labels
        self.file["labels"][index] = labels
        self.file["ids"][index] = image_id

    def __enter__(self) -> "FeatureCacheWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.file.close()


@dataclass
class CacheBatch:
    ids: list[str]
    features: torch.Tensor        # (B, H, W, D) float32
    feature_labels: torch.Tensor  # (B, H, W) uint8
    labels: torch.Tensor          # (B, h, w) uint8


class FeatureCache:
    """Read-only, streaming access to a cache: batches are read chunk by chunk, never all at once."""

    def __init__(self, path: str | Path, expected_params_hash: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise CacheError(f"{self.path}: feature cache not found; build it with `dvc repro features`")
        with h5py.File(self.path, "r") as handle:
            attrs = dict(handle.attrs)
            self.shape = handle["features"].shape
            self.label_shape = handle["labels"].shape[1:]
        if attrs.get("schema_version") != SCHEMA_VERSION:
            raise CacheError(f"{self.path}: schema version {attrs.get('schema_version')} is not {SCHEMA_VERSION}; "
                             f"rebuild it with `dvc repro features`")
        if expected_params_hash is not None and attrs.get("params_hash") != expected_params_hash:
            raise CacheError(f"{self.path}: made by other params (hash {attrs.get('params_hash')}, current "
                             f"{expected_params_hash}); rebuild it with `dvc repro features`")
        self.attrs = attrs
        self.class_names: list[str] = json.loads(attrs["class_names"])
        self.unseen: list[int] = json.loads(attrs["unseen"])
        self.stride = int(attrs["stride"])
        self.feature_dim = int(attrs["feature_dim"])

    def __len__(self) -> int:
        return self.shape[0]

    def batches(self, batch_size: int, limit: int | None = None) -> Iterator[CacheBatch]:
        count = len(self) if limit is None else min(limit, len(self))
        with h5py.File(self.path, "r") as handle:
            for start in range(0, count, batch_size):
                stop = min(start + batch_size, count)
                yield CacheBatch(
                    ids=[value.decode() if isinstance(value, bytes) else value for value in handle["ids"][start:stop]],
                    features=torch.from_numpy(handle["features"][start:stop].astype(np.float32)),
                    feature_labels=torch.from_numpy(handle["feature_labels"][start:stop]),
                    labels=torch.from_numpy(handle["labels"][start:stop]),
                )
