"""Uniform samples of real labelled features per class, streamed from the labelled cache, and the seen-class
samples of a run: drawn once by the samples stage, stored in samples.h5, read by every method."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import h5py
import numpy as np
import torch
from tqdm import tqdm

from zsseg.config import Params
from zsseg.feature_cache import CacheBatch, CacheError, FeatureCache, cache_params_hash, precision_datasets
from zsseg.labels import ignored_classes
from zsseg.runtime import SeedPurpose, derive_seed, torch_generator

SAMPLES_FILE = "samples.h5"


class LabelledPixels(Protocol):
    """Labelled feature pixels read in batches: the labelled cache, or the ceiling's relabelled pixels."""

    feature_dim: int

    def batch_count(self, batch_size: int) -> int: ...

    def batches(self, batch_size: int) -> Iterator[CacheBatch]: ...


def _progress(batches: Iterable[CacheBatch], cache: LabelledPixels, batch_size: int) -> Iterable[CacheBatch]:
    return tqdm(batches, total=cache.batch_count(batch_size), desc="sample features", unit="batch", leave=False)


def sample_class_features(cache: LabelledPixels, classes: Sequence[int], per_class: int, seed: int,
                          batch_size: int = 64) -> dict[int, torch.Tensor]:
    """A uniform sample of at most ``per_class`` labelled feature vectors per class, streamed.

    Each pixel draws a random key; a class keeps the pixels with the smallest keys. The keys are drawn
    for every pixel whatever its label, so the random stream does not depend on the labels.
    """
    rng = torch_generator(seed)
    keys = {c: torch.empty(0) for c in classes}
    kept = {c: torch.empty(0, cache.feature_dim) for c in classes}
    for batch in _progress(cache.batches(batch_size), cache, batch_size):
        features = batch.features
        labels = batch.feature_labels.long()
        pixel_keys = torch.rand(labels.numel(), generator=rng)
        for c in classes:
            mask = labels == c
            if not mask.any():
                continue
            merged_keys = torch.cat([keys[c], pixel_keys[mask]])
            merged = torch.cat([kept[c], features[mask]])
            if merged_keys.numel() > per_class:
                order = torch.argsort(merged_keys, stable=True)[:per_class]
                merged_keys, merged = merged_keys[order], merged[order]
            keys[c], kept[c] = merged_keys, merged
    return {c: kept[c] for c in classes if kept[c].shape[0] > 0}


def sample_pooled_features(cache: FeatureCache, classes: Sequence[int], total: int, seed: int,
                           batch_size: int = 64) -> dict[int, torch.Tensor]:
    """A uniform sample of at most ``total`` labelled feature vectors of any of ``classes``, streamed:
    each class keeps its share of the pixels (its natural frequency)."""
    rng = torch_generator(seed)
    wanted = torch.tensor(sorted(classes))
    keys, kept, labels_kept = torch.empty(0), torch.empty(0, cache.feature_dim), torch.empty(0, dtype=torch.int64)
    for batch in _progress(cache.batches(batch_size), cache, batch_size):
        labels = batch.feature_labels.long()
        pixel_keys = torch.rand(labels.numel(), generator=rng)
        mask = torch.isin(labels, wanted)
        keys = torch.cat([keys, pixel_keys[mask]])
        kept = torch.cat([kept, batch.features[mask]])
        labels_kept = torch.cat([labels_kept, labels[mask]])
        if keys.numel() > total:
            order = torch.argsort(keys, stable=True)[:total]
            keys, kept, labels_kept = keys[order], kept[order], labels_kept[order]
    return {c: kept[labels_kept == c] for c in sorted(classes) if (labels_kept == c).any()}


# classifier.sampling: the real seen features of the final classifier, from the generator's balanced
# sample (``real``): that sample, or the same number drawn at the classes' own pixel frequencies.
CLASSIFIER_SAMPLINGS: dict[str, Callable[[Params, FeatureCache, dict[int, torch.Tensor]], dict[int, torch.Tensor]]] = {
    "balanced": lambda params, cache, real: real,
    "natural": lambda params, cache, real: sample_pooled_features(
        cache, sorted(real), sum(features.shape[0] for features in real.values()),
        derive_seed(params.seed, SeedPurpose.NATURAL_SAMPLES),
        batch_size=params.evaluate.batch_size),
}


@dataclass
class SeenSamples:
    """The real seen-class features every method trains on: the generator's balanced sample, and the
    classifier's (``classifier.sampling``), the same object when balanced."""

    generator: dict[int, torch.Tensor]
    classifier: dict[int, torch.Tensor]


def draw_seen_samples(params: Params, labelled: FeatureCache, log: Callable[[str], None]) -> SeenSamples:
    """Both samples from the labelled cache (each from its own SeedPurpose), each in one streamed pass. Background
    is no seen class with ``dataset.background: ignore`` (its cached pixels are 255)."""
    ignored = ignored_classes(params.dataset.background)
    seen = [c for c in range(len(labelled.class_names)) if c not in labelled.unseen and c not in ignored]
    real = sample_class_features(labelled, seen, params.generator.real_features_per_class,
                                 derive_seed(params.seed, SeedPurpose.SEEN_SAMPLES),
                                 batch_size=params.evaluate.batch_size)
    for c in seen:
        if c not in real:
            log(f"warning: seen class {labelled.class_names[c]!r} has no labelled feature pixel; it is left out")
    return SeenSamples(real, CLASSIFIER_SAMPLINGS[params.classifier.sampling](params, labelled, real))


def _write_sample(group: h5py.Group, sample: dict[int, torch.Tensor], precision: str, dimension: int) -> None:
    classes = sorted(sample)
    features = torch.cat([sample[c] for c in classes]) if classes else torch.empty(0, dimension)
    for name, values in precision_datasets(dimension)[precision].encode(features.numpy()).items():
        group.create_dataset(name, data=values)
    group.create_dataset("classes", data=np.repeat(classes, [sample[c].shape[0] for c in classes]).astype(np.int64))


def _read_sample(group: h5py.Group, precision: str, dimension: int) -> dict[int, torch.Tensor]:
    codec = precision_datasets(dimension)[precision]
    features = codec.decode({name: group[name][:] for name in codec.datasets})
    classes = torch.from_numpy(group["classes"][:])
    return {int(c): features[classes == c] for c in torch.unique(classes)}


def samples_params_hash(params: Params) -> str:
    """The params that make a run's samples: the cache's, the seed, the sample size and the classifier's sampling."""
    chosen = {"cache": cache_params_hash(params), "seed": params.seed,
              "real_features_per_class": params.generator.real_features_per_class, "sampling": params.classifier.sampling}
    return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()[:16]


def save_seen_samples(path: str | Path, samples: SeenSamples, precision: str, dimension: int, params_hash: str) -> None:
    """samples.h5: a group per sample, its features stored as the cache stores them (re-encoded: the values
    match the cache's to float32 rounding), ``classes`` beside them. A balanced classifier sample is the
    generator's, not stored twice."""
    with h5py.File(path, "w") as handle:
        handle.attrs["precision"], handle.attrs["feature_dim"] = precision, dimension
        handle.attrs["params_hash"] = params_hash
        _write_sample(handle.create_group("generator"), samples.generator, precision, dimension)
        if samples.classifier is not samples.generator:
            _write_sample(handle.create_group("classifier"), samples.classifier, precision, dimension)


def load_seen_samples(path: str | Path, params: Params) -> SeenSamples:
    """The samples stage's samples, refused unless the current params drew them."""
    if not Path(path).is_file():
        raise CacheError(f"{path}: samples not found; draw them with `dvc repro samples`")
    with h5py.File(path, "r") as handle:
        if handle.attrs.get("params_hash") != samples_params_hash(params):
            raise CacheError(f"{path}: drawn by other params (seed, features, generator.real_features_per_class or "
                             f"classifier.sampling); draw them again with `dvc repro samples`")
        precision, dimension = str(handle.attrs["precision"]), int(handle.attrs["feature_dim"])
        generator = _read_sample(handle["generator"], precision, dimension)
        classifier = _read_sample(handle["classifier"], precision, dimension) if "classifier" in handle else generator
    return SeenSamples(generator, classifier)
