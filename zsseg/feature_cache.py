"""The HDF5 caches of the training images' per-pixel backbone features, two files per run (schema 4).

- ``labelled.h5``: the labelled training images (no unseen pixel). Of each, a random share
  ``features.labelled_share`` of its feature pixels, each with its label: the majority label of its
  stride x stride block when that label covers at least ``label_purity`` of it, else 255.
- ``pool.h5``: the unlabelled training images, the mining pool. Of each, a random share
  ``features.pool_share`` of its feature pixels, and nothing of its labels: no label of an unlabelled image
  is ever written (the protocol, docs/method.md).

Val and dev are not cached: the evaluate stage runs the network over them (zsseg/evaluation.py), because
at VOC and Pascal-Context sizes their features would take more disk than everything else a cell writes.
A uniform share of a class's pixels is still a uniform sample of them, so the shares shrink what is
stored without biasing any sample drawn from it (docs/cache.md).

Per-pixel arrays are flat, image after image (P pixels of N images); ``image_offsets[i]:image_offsets[i+1]``
are image i's rows:

- the features in ``features.precision``: ``uint8`` as ``codes`` (P, D) uint8 with ``lows`` and ``steps``
  (P,) float32, a pixel's features being ``lows + steps * codes``; or ``float16`` as ``features`` (P, D);
- ``pixels`` (P,) int32: each row's position in its image's (h, w) feature map, row-major;
- ``feature_labels`` (P,) uint8: labelled.h5 only;
- ``image_offsets`` (N+1,) int64, ``feature_shapes`` (N, 2) int32, ``ids`` (N,) UTF-8 strings.

Attributes: ``schema_version``, ``part`` (``labelled`` or ``pool``), ``stride``, ``feature_dim``,
``precision``, ``share``, ``class_names`` and ``unseen`` (JSON), ``label_purity``, ``backbone`` and
``params_hash`` (of the params that made it, which every reader checks).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from zsseg.errors import InputError

SCHEMA_VERSION = 4
# The params that make a cache: stored as its params_hash, which every reader checks. Not the seed: with
# table.backbone_per_seed false, the cells of every seed read the cache of the first seed's cell
# (docs/pipeline.md), and both engines rerun the features stage when the seed changes.
CACHE_PARAMS = ("dataset", "backbone", "features")
LABELLED_FILE, POOL_FILE = "labelled.h5", "pool.h5"
# The most feature pixels one batch of a cache holds (unless one image has more): 0.5 GB of float32
# 256-d features. A batch of 256 VOC images at stride 4 would hold 3 GB, and a stage's memory would grow
# with the batch size instead of staying bounded (docs/pipeline.md, "A real-size cell"). The demo's
# batches are far below it, so its bytes do not depend on it.
BATCH_PIXEL_LIMIT = 1 << 19


class CacheError(InputError):
    """A feature cache is missing, of another schema, or was made by other params."""


@dataclass(frozen=True)
class Precision:
    """How a cache stores features: the HDF5 datasets of a block of rows, and back to float32."""

    datasets: dict[str, tuple[str, tuple[int, ...]]]          # name -> (dtype, shape after the row axis)
    encode: Callable[[np.ndarray], dict[str, np.ndarray]]      # (n, D) float32 -> one array per dataset
    decode_into: Callable[[dict[str, np.ndarray], torch.Tensor], torch.Tensor]  # -> into out, (n, D) float32

    def decode(self, arrays: dict[str, np.ndarray]) -> torch.Tensor:
        # The first dataset holds the (n, D) values (codes or features).
        return self.decode_into(arrays, torch.empty(arrays[next(iter(self.datasets))].shape))


def _encode_uint8(features: np.ndarray) -> dict[str, np.ndarray]:
    """Each pixel's 256 levels span its own range: the error is at most half a step, (max - min) / 510."""
    lows = features.min(axis=1)
    steps = (features.max(axis=1) - lows) / 255.0
    steps = np.where(steps > 0, steps, 1.0).astype(np.float32)
    codes = np.rint((features - lows[:, None]) / steps[:, None])
    return {"codes": np.clip(codes, 0, 255).astype(np.uint8), "lows": lows.astype(np.float32), "steps": steps}


def _decode_uint8(arrays: dict[str, np.ndarray], out: torch.Tensor) -> torch.Tensor:
    out.copy_(torch.from_numpy(arrays["codes"]))
    return torch.addcmul(torch.from_numpy(arrays["lows"])[:, None], out, torch.from_numpy(arrays["steps"])[:, None],
                         out=out)


def precision_datasets(feature_dim: int) -> dict[str, Precision]:
    """features.precision: the storage of a feature vector of ``feature_dim`` values."""
    return {
        "uint8": Precision({"codes": ("uint8", (feature_dim,)), "lows": ("float32", ()), "steps": ("float32", ())},
                           _encode_uint8, _decode_uint8),
        # torch converts float16 three times faster than numpy, to the same values.
        "float16": Precision({"features": ("float16", (feature_dim,))},
                             lambda features: {"features": torch.from_numpy(features).half().numpy()},
                             lambda arrays, out: out.copy_(torch.from_numpy(arrays["features"]))),
    }


class FeatureCacheWriter:
    """Appends images one by one, flushed in groups (resizing HDF5 datasets per image is slow). The file is
    closed even when writing fails; ids and shapes are written once at the end."""

    FLUSH_IMAGES = 64

    def __init__(self, path: str | Path, feature_dim: int, precision: str, labelled: bool, attributes: dict) -> None:
        self.codec = precision_datasets(feature_dim)[precision]
        self.labelled = labelled
        self.offsets, self.ids, self.shapes = [0], [], []
        self.pending: list[dict[str, np.ndarray]] = []
        self.chunk_rows = 0
        self.file = h5py.File(path, "w")
        try:
            self.file.attrs["schema_version"] = SCHEMA_VERSION
            self.file.attrs["part"] = "labelled" if labelled else "pool"
            self.file.attrs["precision"] = precision
            for key, value in attributes.items():
                self.file.attrs[key] = json.dumps(value) if isinstance(value, (list, dict, tuple)) else value
        except BaseException:
            self.file.close()
            raise

    def _flush(self) -> None:
        if not self.pending:
            return
        for name in self.pending[0]:
            values = np.concatenate([part[name] for part in self.pending])
            if name not in self.file:
                self.file.create_dataset(name, (0, *values.shape[1:]), maxshape=(None, *values.shape[1:]),
                                         dtype=values.dtype, chunks=(max(self.chunk_rows, 1), *values.shape[1:]))
            dataset = self.file[name]
            start = dataset.shape[0]
            dataset.resize(start + values.shape[0], axis=0)
            dataset[start:] = values
        self.pending.clear()

    def write(self, image_id: str, features: np.ndarray, pixels: np.ndarray, shape: tuple[int, int],
              labels: np.ndarray | None = None) -> None:
        """The kept ``features`` (n, D) float32 of one image, their ``pixels`` in its (h, w) map, and in
        labelled.h5 their labels (n,)."""
        if (labels is not None) != self.labelled:
            raise ValueError(f"{self.file.filename}: labels are written to labelled.h5 and never to pool.h5")
        if not np.isfinite(features).all():
            raise FloatingPointError(f"features of image {image_id!r} contain NaN or Inf")
        self.chunk_rows = self.chunk_rows or features.shape[0]
        arrays = {**self.codec.encode(features), "pixels": pixels.astype(np.int32)}
        if labels is not None:
            arrays["feature_labels"] = labels.astype(np.uint8)
        self.pending.append(arrays)
        self.offsets.append(self.offsets[-1] + features.shape[0])
        self.ids.append(image_id)
        self.shapes.append(shape)
        if len(self.pending) >= self.FLUSH_IMAGES:
            self._flush()

    def __enter__(self) -> "FeatureCacheWriter":
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        try:
            if exc_type is None:
                self._flush()
                for name, (dtype, shape) in {**self.codec.datasets, "pixels": ("int32", ()),
                                             **({"feature_labels": ("uint8", ())} if self.labelled else {})}.items():
                    if name not in self.file:  # no image, or none kept a pixel
                        self.file.create_dataset(name, (0, *shape), dtype=dtype)
                self.file.create_dataset("ids", data=np.array(self.ids, dtype=object), dtype=h5py.string_dtype())
                self.file.create_dataset("feature_shapes", data=np.asarray(self.shapes, dtype=np.int32).reshape(-1, 2))
                self.file.create_dataset("image_offsets", data=np.asarray(self.offsets, dtype=np.int64))
        finally:
            self.file.close()


@dataclass
class CacheBatch:
    ids: list[str]
    features: torch.Tensor                 # (P, D) float32, the batch's kept feature pixels image after image
    pixel_counts: torch.Tensor             # (B,) int64: how many of them each image has
    pixels: torch.Tensor                   # (P,) int64: each one's position in its image's feature map
    feature_labels: torch.Tensor | None    # (P,) uint8 in labelled.h5, None in pool.h5

    def pixel_images(self) -> torch.Tensor:
        """(P,) int64: the index in the batch of the image each row belongs to."""
        return torch.repeat_interleave(torch.arange(len(self.pixel_counts)), self.pixel_counts)


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
            self.image_offsets = handle["image_offsets"][:]
            self.feature_shapes = [tuple(int(v) for v in shape) for shape in handle["feature_shapes"][:]]
            self.ids = handle["ids"].asstr()[:].tolist()
        if expected_params_hash is not None and attrs.get("params_hash") != expected_params_hash:
            raise CacheError(f"{self.path}: made by other params (hash {attrs.get('params_hash')}, current "
                             f"{expected_params_hash}); rebuild it with `dvc repro features`")
        self.attrs = attrs
        self.labelled = attrs["part"] == "labelled"
        self.class_names: list[str] = json.loads(attrs["class_names"])
        self.unseen: list[int] = json.loads(attrs["unseen"])
        self.stride = int(attrs["stride"])
        self.feature_dim = int(attrs["feature_dim"])
        self.codec = precision_datasets(self.feature_dim)[str(attrs["precision"])]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def pixel_count(self) -> int:
        return int(self.image_offsets[-1])

    def batch_bounds(self, batch_size: int) -> list[tuple[int, int]]:
        """The images [start, stop) of each batch: at most ``batch_size`` images, and at most
        BATCH_PIXEL_LIMIT pixels unless one image alone has more."""
        bounds, start = [], 0
        while start < len(self):
            stop = min(start + batch_size, len(self))
            fitting = int(np.searchsorted(self.image_offsets, self.image_offsets[start] + BATCH_PIXEL_LIMIT,
                                          side="right")) - 1
            stop = max(start + 1, min(stop, fitting))
            bounds.append((start, stop))
            start = stop
        return bounds

    def batch_count(self, batch_size: int) -> int:
        return len(self.batch_bounds(batch_size))

    def batches(self, batch_size: int) -> Iterator[CacheBatch]:
        """The cache in batches (``batch_bounds``). A batch's features are a view of one buffer that every
        batch is decoded into, and so are its stored arrays: valid until the next batch is read. Copy
        what you keep (indexing with a mask copies). Fresh buffers per batch, of sizes that vary from
        batch to batch, fragment the heap, and a stage's memory then grows with the cache."""
        bounds = self.batch_bounds(batch_size)
        largest = max((int(self.image_offsets[stop] - self.image_offsets[start]) for start, stop in bounds), default=0)
        stored = {name: np.empty((largest, *shape), dtype=dtype) for name, (dtype, shape) in self.codec.datasets.items()}
        decoded = torch.empty(largest, self.feature_dim)
        with h5py.File(self.path, "r") as handle:
            for start, stop in bounds:
                rows = slice(int(self.image_offsets[start]), int(self.image_offsets[stop]))
                count = rows.stop - rows.start
                if count:
                    for name, buffer in stored.items():
                        handle[name].read_direct(buffer, np.s_[rows], np.s_[:count])
                yield CacheBatch(
                    ids=self.ids[start:stop],
                    features=self.codec.decode_into({name: buffer[:count] for name, buffer in stored.items()},
                                                    decoded[:count]),
                    pixel_counts=torch.from_numpy(np.diff(self.image_offsets[start:stop + 1])),
                    pixels=torch.from_numpy(handle["pixels"][rows].astype(np.int64)),
                    feature_labels=torch.from_numpy(handle["feature_labels"][rows]) if self.labelled else None,
                )


def cache_params_hash(params: Any) -> str:
    """The hash of the params that make a cache (``CACHE_PARAMS``), as stored in its ``params_hash``."""
    return params.section_hash(*CACHE_PARAMS)


def open_cache(path: str | Path, params: Any) -> FeatureCache:
    """The cache at ``path``, refused unless the current params made it."""
    return FeatureCache(path, cache_params_hash(params))


@dataclass
class TrainingCaches:
    """The two caches of a run's features directory."""

    labelled: FeatureCache
    pool: FeatureCache

    @property
    def class_names(self) -> list[str]:
        return self.labelled.class_names

    @property
    def unseen(self) -> list[int]:
        return self.labelled.unseen

    @property
    def feature_dim(self) -> int:
        return self.labelled.feature_dim


def open_training_caches(directory: str | Path, params: Any) -> TrainingCaches:
    return TrainingCaches(open_cache(Path(directory) / LABELLED_FILE, params),
                          open_cache(Path(directory) / POOL_FILE, params))
