"""Confident pseudo-features of unseen classes, mined by the previous round's classifier (recursive ZS-MMD).

Our reading of Wang, Farazi & Barnes (IJCNN 2021), whose full text was not available to us: the previous
round's classifier labels the pixels of the mining pool (``recursion.mining_pool``: every cached pixel of
the unlabelled training images, by default); a pixel whose top class is an unseen class u with softmax
confidence c >= ``threshold`` is a candidate pseudo-feature of u. Per class, ``per_class_cap`` of them are
kept (``selection``: the most confident, or a uniform random sample), at most ``per_image_cap`` from one
image, each weighted by ``weighting`` (c itself, (c - threshold) / (1 - threshold), or 1). The generator is
then trained on MMD(seen) + lambda * weighted MMD(u). Every choice is a parameter (docs/method.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import torch
from torch import nn
from tqdm import tqdm

from zsseg.config import RecursionParams
from zsseg.errors import InputError, NumericalError
from zsseg.feature_cache import FeatureCache, TrainingCaches, precision_datasets
from zsseg.runtime import torch_generator

PSEUDO_FEATURES_FILE = "pseudo_features.h5"


@dataclass
class PseudoFeatures:
    """Pseudo-features of unseen classes mined from the unlabelled training images."""

    features: torch.Tensor     # (N, D) float32
    classes: torch.Tensor      # (N,) int64, dataset class indices
    confidences: torch.Tensor  # (N,) float32, the softmax confidence of the class
    weights: torch.Tensor      # (N,) float32, the weight in the ZS-MMD term (recursion.weighting)

    def by_class(self) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """{class: (features, weights)}, what the generator's ZS-MMD term takes."""
        return {int(c): (self.features[self.classes == c], self.weights[self.classes == c])
                for c in torch.unique(self.classes)}

    def save(self, path: str | Path, attributes: dict, precision: str) -> None:
        """Their features as the cache they came from stores them (``features.precision``), the rest as they are."""
        codec = precision_datasets(self.features.shape[1])[precision]
        with h5py.File(path, "w") as handle:
            for name, values in codec.encode(self.features.numpy()).items():
                handle.create_dataset(name, data=values)
            for name in ("classes", "confidences", "weights"):
                handle.create_dataset(name, data=getattr(self, name).numpy())
            for key, value in {**attributes, "precision": precision}.items():
                handle.attrs[key] = value


class NothingMinedError(InputError):
    """A recursive round found no unseen class to mine: it would be seen-only training, not ZS-MMD."""


# recursion.mining_pool: the cached feature pixels whose predictions may become pseudo-labels: those of the
# unlabelled training images (pool.h5), or of every training image (pool.h5, then labelled.h5).
MINING_POOLS: dict[str, Callable[[TrainingCaches], list[FeatureCache]]] = {
    "unlabelled_images": lambda caches: [caches.pool],
    "all_images": lambda caches: [caches.pool, caches.labelled],
}

# recursion.weighting: a pseudo-feature's weight from its confidence c and the threshold.
WEIGHTINGS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "confidence": lambda confidence, threshold: confidence,
    "rescaled": lambda confidence, threshold: (confidence - threshold) / (1.0 - threshold),
    "uniform": lambda confidence, threshold: torch.ones_like(confidence),
}

# recursion.selection: the rank of a candidate (smaller first) from its confidence and a uniform random key.
SELECTIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "most_confident": lambda confidence, random_keys: -confidence,
    "random_above_threshold": lambda confidence, random_keys: random_keys,
}


@dataclass
class ScoredPixels:
    """The mining pool of one batch, scored by a classifier."""

    features: torch.Tensor     # (P, D)
    images: torch.Tensor       # (P,) int64: its image's index over the pool's caches
    confidence: torch.Tensor   # (P,) softmax confidence of the top class
    top: torch.Tensor          # (P,) the top class


@torch.no_grad()
def score_pool(caches: TrainingCaches, classifier: nn.Linear, pool: str, batch_size: int, device: torch.device,
               who: str) -> Iterator[ScoredPixels]:
    """Per batch, the pixels of the mining pool ``pool`` with ``classifier``'s softmax confidence and top
    class; ``who`` (e.g. "round_2: pseudo-features: the previous round's classifier") names it on NaN.
    Images are numbered over the pool's caches, one after the other."""
    classifier = classifier.to(device).eval()
    start = 0
    for cache in MINING_POOLS[pool](caches):
        for batch in tqdm(cache.batches(batch_size), total=cache.batch_count(batch_size), desc="score pool",
                          unit="batch", leave=False):
            images = batch.pixel_images() + start
            start += len(batch.ids)
            if batch.features.shape[0] == 0:
                continue
            logits = classifier(batch.features.to(device))
            if not torch.isfinite(logits).all():
                raise NumericalError(f"{who} gives NaN or Inf logits in images {batch.ids[0]!r}..{batch.ids[-1]!r}")
            confidence, top = logits.softmax(dim=1).max(dim=1)
            yield ScoredPixels(batch.features, images, confidence.cpu(), top.cpu())


def first_per_group(groups: torch.Tensor, rank: torch.Tensor, candidates: torch.Tensor,
                    count: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """A mask of the candidates that come first, by ``rank`` (smaller first; ties by position), within their
    group: ``count(size)`` of each group of ``size`` candidates."""
    index = torch.nonzero(candidates).reshape(-1)
    order = index[torch.argsort(rank[index], stable=True)]
    order = order[torch.argsort(groups[order], stable=True)]
    sorted_groups = groups[order]
    first = torch.searchsorted(sorted_groups, sorted_groups)
    size = torch.searchsorted(sorted_groups, sorted_groups, right=True) - first
    kept = torch.zeros_like(candidates)
    kept[order[torch.arange(order.numel()) - first < count(size)]] = True
    return kept


@torch.no_grad()
def extract_pseudo_features(caches: TrainingCaches, classifier: nn.Linear, unseen: Sequence[int],
                            recursion: RecursionParams, batch_size: int, device: torch.device, seed: int,
                            stage: str = "pseudo-features") -> tuple[PseudoFeatures, dict[str, dict]]:
    """Mine pseudo-features as the module docstring says; a class with fewer than ``min_count`` is
    dropped. Returns the features and per-class counts for the log."""
    rng = torch_generator(seed)
    unseen = sorted(unseen)
    unseen_tensor = torch.tensor(unseen)
    selected = {u: (torch.empty(0, caches.feature_dim), torch.empty(0), torch.empty(0)) for u in unseen}
    candidates = {u: 0 for u in unseen}
    rank_of = SELECTIONS[recursion.selection]
    who = f"{stage}: pseudo-features: the previous round's classifier"
    for pixels in score_pool(caches, classifier, recursion.mining_pool, batch_size, device, who):
        rank = rank_of(pixels.confidence, torch.rand(pixels.confidence.numel(), generator=rng))
        confident = torch.isin(pixels.top, unseen_tensor) & (pixels.confidence >= recursion.threshold)
        for u in unseen:
            candidates[u] += int((confident & (pixels.top == u)).sum())
        if recursion.per_image_cap is not None:
            cap = recursion.per_image_cap
            confident = first_per_group(pixels.images * (max(unseen) + 1) + pixels.top, rank, confident,
                                        lambda size: torch.clamp(size, max=cap))
        for u in unseen:
            mask = confident & (pixels.top == u)
            if not mask.any():
                continue
            features, confidence, ranks = selected[u]
            merged = (torch.cat([features, pixels.features[mask]]), torch.cat([confidence, pixels.confidence[mask]]),
                      torch.cat([ranks, rank[mask]]))
            order = torch.argsort(merged[2], stable=True)[:recursion.per_class_cap]
            selected[u] = tuple(column[order] for column in merged)
    stats, parts = {}, []
    for u, (features, confidence, _) in selected.items():
        kept = features.shape[0] >= max(recursion.min_count, 1)
        # after_caps is what min_count is compared with: the confident pixels the image and class caps left.
        stats[caches.class_names[u]] = {"confident_pixels": candidates[u], "after_caps": features.shape[0],
                                       "kept": features.shape[0] if kept else 0, "skipped": not kept}
        if kept:
            parts.append((features, torch.full((features.shape[0],), u, dtype=torch.int64), confidence,
                          WEIGHTINGS[recursion.weighting](confidence, recursion.threshold)))
    if not parts:
        return PseudoFeatures(torch.empty(0, caches.feature_dim), torch.empty(0, dtype=torch.int64),
                              torch.empty(0), torch.empty(0)), stats
    return PseudoFeatures(*(torch.cat(column) for column in zip(*parts))), stats
