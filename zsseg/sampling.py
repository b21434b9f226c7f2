"""Uniform samples of real labelled features per class, streamed from a feature cache."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from tqdm import tqdm

from zsseg.config import Params
from zsseg.feature_cache import FeatureCache
from zsseg.runtime import derive_seed, torch_generator


def sample_class_features(cache: FeatureCache, classes: Sequence[int], per_class: int, seed: int,
                          batch_size: int = 64) -> dict[int, torch.Tensor]:
    """A uniform sample of at most ``per_class`` labelled feature vectors per class, streamed.

    Each pixel draws a random key; a class keeps the pixels with the smallest keys. The keys are drawn
    for every pixel whatever its label, so the random stream does not depend on the labels.
    """
    rng = torch_generator(seed)
    keys = {c: torch.empty(0) for c in classes}
    kept = {c: torch.empty(0, cache.feature_dim) for c in classes}
    for batch in tqdm(cache.batches(batch_size), total=-(-len(cache) // batch_size), desc="sample features",
                      unit="batch", leave=False):
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
    for batch in tqdm(cache.batches(batch_size), total=-(-len(cache) // batch_size), desc="sample features",
                      unit="batch", leave=False):
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


def seen_class_features(params: Params, cache: FeatureCache, log: Callable[[str], None]) -> dict[int, torch.Tensor]:
    """The real seen-class features every method trains on: the same sample (seed key 1) for all of them."""
    seen = [c for c in range(len(cache.class_names)) if c not in cache.unseen]
    real = sample_class_features(cache, seen, params.generator.real_features_per_class,
                                 derive_seed(params.seed, 1), batch_size=params.evaluate.batch_size)
    for c in seen:
        if c not in real:
            log(f"warning: seen class {cache.class_names[c]!r} has no labelled feature pixel; it is left out")
    return real


# classifier.sampling: the real seen features of the final classifier, from the generator's balanced
# sample (``real``): that sample, or the same number drawn at the classes' own pixel frequencies.
CLASSIFIER_SAMPLINGS: dict[str, Callable[[Params, FeatureCache, dict[int, torch.Tensor]], dict[int, torch.Tensor]]] = {
    "balanced": lambda params, cache, real: real,
    "natural": lambda params, cache, real: sample_pooled_features(
        cache, sorted(real), sum(features.shape[0] for features in real.values()), derive_seed(params.seed, 5),
        batch_size=params.evaluate.batch_size),
}


def classifier_seen_features(params: Params, cache: FeatureCache,
                             real: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    return CLASSIFIER_SAMPLINGS[params.classifier.sampling](params, cache, real)
