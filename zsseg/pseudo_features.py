"""Confident pseudo-features of unseen classes, mined by the previous round's classifier (recursive ZS-MMD).

Our reading of Wang, Farazi & Barnes (IJCNN 2021), whose full text was not available to us: the previous
round's classifier labels the pixels of the mining pool (``recursion.mining_pool``: every cached pixel of
the unlabelled training images, by default); a pixel whose top class is an unseen class u with softmax
confidence c >= t_u is a candidate pseudo-feature of u. The threshold t_u is ``threshold`` for every class
(``thresholds: global``), or each class's own (``per_class``): the confidence at the top
``class_top_percent`` % of the pool pixels whose top class is u, never below ``class_threshold_floor``
(CBST's class-balanced selection, Zou et al., ECCV 2018, applied to pseudo-features), or the lower of the
two (``at_most_global``). With ``guard:
agreement``, a candidate must also have been the top class u of the classifier before the previous one
(from round 2 on). Per class, ``per_class_cap`` of them are kept (``selection``: the most confident, or a
uniform random sample), at most ``per_image_cap`` from one image, each weighted by ``weighting`` (c itself,
(c - t_u) / (1 - t_u), or 1). The generator is then trained on MMD(seen) + lambda * weighted MMD(u). Every
choice is a parameter (docs/method.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from zsseg.config import RecursionParams
from zsseg.errors import InputError, NumericalError
from zsseg.feature_cache import FeatureCache, TrainingCaches, precision_datasets
from zsseg.runtime import torch_generator

PSEUDO_FEATURES_FILE = "pseudo_features.h5"
# The top class of every mining-pool pixel under the classifier a round mined with (recursion.guard:
# agreement): the next round compares its own candidates with it.
POOL_PREDICTIONS_FILE = "pool_predictions.npy"


@dataclass
class PseudoFeatures:
    """Pseudo-features of unseen classes mined from the unlabelled training images."""

    features: torch.Tensor     # (N, D) float32
    classes: torch.Tensor      # (N,) int64, dataset class indices
    confidences: torch.Tensor  # (N,) float32, the softmax confidence of the class
    weights: torch.Tensor      # (N,) float32, the weight in the ZS-MMD term (recursion.weighting)
    rows: torch.Tensor         # (N,) int64, its row in the mining pool (pool.h5's rows, then labelled.h5's):
                               # where it came from, for the report's precision diagnostic alone

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
            for name in ("classes", "confidences", "weights", "rows"):
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

# recursion.weighting: a pseudo-feature's weight from its confidence c and its class's threshold t. The
# ZS-MMD term normalises the weights of each class to sum to one (zsseg/mmd.py), so only their ratios within
# a class matter, and per-class thresholds keep each weighting's meaning: rescaled measures how far above its
# own class's bar a pixel is. A class whose threshold is 1 has only pixels at c = 1: equal weights.
WEIGHTINGS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "confidence": lambda confidence, threshold: confidence,
    "rescaled": lambda confidence, threshold: ((confidence - threshold) / (1.0 - threshold) if threshold < 1
                                               else torch.ones_like(confidence)),
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
    rows: torch.Tensor         # (P,) int64: its row over the pool's caches
    confidence: torch.Tensor   # (P,) softmax confidence of the top class
    top: torch.Tensor          # (P,) the top class


@torch.no_grad()
def score_pool(caches: TrainingCaches, classifier: nn.Linear, pool: str, batch_size: int, device: torch.device,
               who: str) -> Iterator[ScoredPixels]:
    """Per batch, the pixels of the mining pool ``pool`` with ``classifier``'s softmax confidence and top
    class; ``who`` (e.g. "round_2: pseudo-features: the previous round's classifier") names it on NaN.
    Images are numbered over the pool's caches, one after the other."""
    classifier = classifier.to(device).eval()
    start, row = 0, 0
    for cache in MINING_POOLS[pool](caches):
        for batch in tqdm(cache.batches(batch_size), total=cache.batch_count(batch_size), desc="score pool",
                          unit="batch", leave=False):
            images = batch.pixel_images() + start
            rows = torch.arange(row, row + batch.features.shape[0])
            start += len(batch.ids)
            row += batch.features.shape[0]
            if batch.features.shape[0] == 0:
                continue
            logits = classifier(batch.features.to(device))
            if not torch.isfinite(logits).all():
                raise NumericalError(f"{who} gives NaN or Inf logits in images {batch.ids[0]!r}..{batch.ids[-1]!r}")
            confidence, top = logits.softmax(dim=1).max(dim=1)
            yield ScoredPixels(batch.features, images, rows, confidence.cpu(), top.cpu())


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


def class_thresholds(scores: dict[int, torch.Tensor], top_percent: float, floor: float) -> dict[int, float]:
    """Each class's threshold from its own scores (``scores[u]``: the confidences of the pool pixels whose top
    class is u): the confidence of its ceil(top_percent % x n)-th most confident pixel, never below ``floor``.
    Every pixel at or above it passes, so ties at the threshold may pass more than top_percent %. A class no
    pixel has as its top class gets an infinite threshold: nothing can pass it."""
    thresholds = {}
    for u, values in scores.items():
        if values.numel() == 0:
            thresholds[u] = math.inf
            continue
        # Exact decimal arithmetic: 20 / 100 * 10 is 2.0000000000000004 in floats, whose ceiling is 3.
        rank = max(1, math.ceil(Fraction(str(top_percent)) * values.numel() / 100))
        thresholds[u] = max(floor, float(torch.topk(values, rank).values[-1]))
    return thresholds


def _per_class_thresholds(caches: TrainingCaches, classifier: nn.Linear, unseen: Sequence[int],
                          recursion: RecursionParams, batch_size: int, device: torch.device,
                          who: str) -> dict[int, float]:
    """One scoring pass over the pool for every unseen class's own scores, then ``class_thresholds``."""
    scores: dict[int, list[torch.Tensor]] = {u: [] for u in unseen}
    for pixels in score_pool(caches, classifier, recursion.mining_pool, batch_size, device, who):
        for u in unseen:
            scores[u].append(pixels.confidence[pixels.top == u])
    return class_thresholds({u: torch.cat(values) if values else torch.empty(0) for u, values in scores.items()},
                            recursion.class_top_percent, recursion.class_threshold_floor)


# recursion.guard: whether a candidate must have had the same top class in the previous round's mining pass
# (the pool predictions that round saved), against drift.
GUARDS: dict[str, bool] = {"none": False, "agreement": True}

# recursion.thresholds: each unseen class's confidence threshold, {class: t_u}.
THRESHOLD_RULES: dict[str, Callable[..., dict[int, float]]] = {
    "global": lambda caches, classifier, unseen, recursion, *_: {u: recursion.threshold for u in unseen},
    "per_class": _per_class_thresholds,
    # The per-class threshold only where it is lower than the global one: a class with enough pixels above
    # `threshold` keeps all of them (the global rule's count), and a class that rule starves gets its own.
    "at_most_global": lambda caches, classifier, unseen, recursion, *rest: {
        u: min(recursion.threshold, threshold)
        for u, threshold in _per_class_thresholds(caches, classifier, unseen, recursion, *rest).items()},
}


def pool_rows(caches: TrainingCaches, pool: str) -> int:
    return sum(cache.pixel_count for cache in MINING_POOLS[pool](caches))


def save_pool_predictions(directory: Path, predictions: torch.Tensor) -> None:
    np.save(directory / POOL_PREDICTIONS_FILE, predictions.numpy())


def load_pool_predictions(directory: Path, rows: int) -> torch.Tensor | None:
    """The pool predictions the round in ``directory`` saved, or None where it mined nothing (round 0)."""
    path = directory / POOL_PREDICTIONS_FILE
    if not path.is_file():
        return None
    predictions = torch.from_numpy(np.load(path, allow_pickle=False))
    if predictions.shape != (rows,):
        raise InputError(f"{path}: {tuple(predictions.shape)} pool predictions, the mining pool has {rows} rows; "
                         f"rerun the rounds")
    return predictions


@dataclass
class Mining:
    """What a round mined, its log per class and, with ``recursion.guard: agreement``, the top class of every
    pool pixel under the classifier it mined with (for the next round)."""

    pseudo_features: PseudoFeatures
    stats: dict[str, dict]
    pool_predictions: torch.Tensor | None


@torch.no_grad()
def extract_pseudo_features(caches: TrainingCaches, classifier: nn.Linear, unseen: Sequence[int],
                            recursion: RecursionParams, batch_size: int, device: torch.device, seed: int,
                            stage: str = "pseudo-features",
                            previous_predictions: torch.Tensor | None = None) -> Mining:
    """Mine pseudo-features as the module docstring says; a class with fewer than ``min_count`` is dropped.
    ``previous_predictions``: the previous round's pool predictions, which candidates must agree with
    (``recursion.guard: agreement``; None in round 1, which has no previous mining)."""
    rng = torch_generator(seed)
    unseen = sorted(unseen)
    unseen_tensor = torch.tensor(unseen)
    who = f"{stage}: pseudo-features: the previous round's classifier"
    thresholds = THRESHOLD_RULES[recursion.thresholds](caches, classifier, unseen, recursion, batch_size, device,
                                                       who)
    threshold_of = torch.full((len(caches.class_names),), math.inf)
    threshold_of[unseen_tensor] = torch.tensor([thresholds[u] for u in unseen], dtype=torch.float32)
    predictions = (torch.full((pool_rows(caches, recursion.mining_pool),), -1, dtype=torch.int16)
                   if GUARDS[recursion.guard] else None)
    selected = {u: (torch.empty(0, caches.feature_dim), torch.empty(0), torch.empty(0),
                    torch.empty(0, dtype=torch.int64)) for u in unseen}
    candidates = {u: 0 for u in unseen}
    disagreeing = {u: 0 for u in unseen}
    rank_of = SELECTIONS[recursion.selection]
    for pixels in score_pool(caches, classifier, recursion.mining_pool, batch_size, device, who):
        rank = rank_of(pixels.confidence, torch.rand(pixels.confidence.numel(), generator=rng))
        confident = torch.isin(pixels.top, unseen_tensor) & (pixels.confidence >= threshold_of[pixels.top])
        if predictions is not None:
            predictions[pixels.rows] = pixels.top.to(torch.int16)
        if previous_predictions is not None:
            agrees = previous_predictions[pixels.rows].to(torch.int64) == pixels.top
            for u in unseen:
                disagreeing[u] += int((confident & ~agrees & (pixels.top == u)).sum())
            confident &= agrees
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
            merged = tuple(torch.cat([kept, new[mask]]) for kept, new in zip(
                selected[u], (pixels.features, pixels.confidence, rank, pixels.rows)))
            order = torch.argsort(merged[2], stable=True)[:recursion.per_class_cap]
            selected[u] = tuple(column[order] for column in merged)
    stats, parts = {}, []
    for u, (features, confidence, _, rows) in selected.items():
        kept = features.shape[0] >= max(recursion.min_count, 1)
        # after_caps is what min_count is compared with: the confident pixels the image and class caps left.
        stats[caches.class_names[u]] = {
            "threshold": thresholds[u] if math.isfinite(thresholds[u]) else None,
            "confident_pixels": candidates[u], "disagreeing_pixels": disagreeing[u],
            "after_caps": features.shape[0], "kept": features.shape[0] if kept else 0, "skipped": not kept}
        if kept:
            parts.append((features, torch.full((features.shape[0],), u, dtype=torch.int64), confidence,
                          WEIGHTINGS[recursion.weighting](confidence, thresholds[u]),
                          rows))
    if not parts:
        empty = PseudoFeatures(torch.empty(0, caches.feature_dim), torch.empty(0, dtype=torch.int64),
                               torch.empty(0), torch.empty(0), torch.empty(0, dtype=torch.int64))
        return Mining(empty, stats, predictions)
    return Mining(PseudoFeatures(*(torch.cat(column) for column in zip(*parts))), stats, predictions)
