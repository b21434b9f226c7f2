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


def seen_class_features(params: Params, cache: FeatureCache, log: Callable[[str], None]) -> dict[int, torch.Tensor]:
    """The real seen-class features every method trains on: the same sample (seed key 1) for all of them."""
    seen = [c for c in range(len(cache.class_names)) if c not in cache.unseen]
    real = sample_class_features(cache, seen, params.generator.real_features_per_class,
                                 derive_seed(params.seed, 1), batch_size=params.evaluate.batch_size)
    for c in seen:
        if c not in real:
            log(f"warning: seen class {cache.class_names[c]!r} has no labelled feature pixel; it is left out")
    return real
