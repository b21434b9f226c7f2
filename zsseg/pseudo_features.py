"""Confident pseudo-features of unseen classes, mined by the previous round's classifier (recursive ZS-MMD).

Reading of Wang, Farazi & Barnes (IJCNN 2021) implemented here (its full text was not available):
the previous round's classifier labels the *unlabelled* pixels of the training cache; a pixel whose
top class is an unseen class u with softmax confidence >= threshold becomes a pseudo-feature of u,
weighted by that confidence. The generator is then trained on MMD(seen) + lambda * weighted MMD(u).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from zsseg.errors import NumericalError
from zsseg.feature_cache import CacheBatch, FeatureCache
from zsseg.labels import IGNORE_INDEX

PSEUDO_FEATURES_FILE = "pseudo_features.h5"


@dataclass
class PseudoFeatures:
    """Confident pseudo-features of unseen classes mined from unlabelled training pixels."""

    features: torch.Tensor     # (N, D) float32
    classes: torch.Tensor      # (N,) int64, dataset class indices
    confidences: torch.Tensor  # (N,) float32

    def by_class(self) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        return {int(c): (self.features[self.classes == c], self.confidences[self.classes == c])
                for c in torch.unique(self.classes)}

    def save(self, path: str | Path, attributes: dict) -> None:
        with h5py.File(path, "w") as handle:
            handle.create_dataset("features", data=self.features.numpy().astype(np.float32))
            handle.create_dataset("classes", data=self.classes.numpy().astype(np.int64))
            handle.create_dataset("confidences", data=self.confidences.numpy().astype(np.float32))
            for key, value in attributes.items():
                handle.attrs[key] = value

    @classmethod
    def load(cls, path: str | Path) -> "PseudoFeatures":
        with h5py.File(path, "r") as handle:
            return cls(torch.from_numpy(handle["features"][:]), torch.from_numpy(handle["classes"][:]),
                       torch.from_numpy(handle["confidences"][:]))


def unlabelled_pixels(batch: CacheBatch) -> torch.Tensor:
    """The mining pool of a batch: its feature pixels that the train cache gives no label (255)."""
    return batch.feature_labels == IGNORE_INDEX


@torch.no_grad()
def score_unlabelled_pixels(cache: FeatureCache, classifier: nn.Linear, batch_size: int, device: torch.device,
                            who: str) -> Iterator[tuple[CacheBatch, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per batch, the features of its unlabelled pixels with ``classifier``'s softmax confidence and top
    class; ``who`` (e.g. "round_2: pseudo-features: the previous round's classifier") names it on NaN."""
    classifier = classifier.to(device).eval()
    for batch in tqdm(cache.batches(batch_size), total=-(-len(cache) // batch_size), desc="score unlabelled",
                      unit="batch", leave=False):
        features = batch.features[unlabelled_pixels(batch)]
        if features.shape[0] == 0:
            continue
        logits = classifier(features.to(device))
        if not torch.isfinite(logits).all():
            raise NumericalError(f"{who} gives NaN or Inf logits in images {batch.ids[0]!r}..{batch.ids[-1]!r}")
        confidence, top = logits.softmax(dim=1).max(dim=1)
        yield batch, features, confidence.cpu(), top.cpu()


@torch.no_grad()
def extract_pseudo_features(cache: FeatureCache, classifier: nn.Linear, unseen: Sequence[int], threshold: float,
                            per_class_cap: int, min_count: int, batch_size: int, device: torch.device,
                            stage: str = "pseudo-features") -> tuple[PseudoFeatures, dict[str, dict]]:
    """Mine pseudo-features from the pixels whose label is 255 (the train cache holds no unseen label).

    Per unseen class the ``per_class_cap`` most confident pixels are kept; a class with fewer than
    ``min_count`` is dropped. Returns the features and per-class counts for the log.
    """
    unseen_tensor = torch.tensor(sorted(unseen))
    selected = {u: (torch.empty(0, cache.feature_dim), torch.empty(0)) for u in sorted(unseen)}
    candidates = {u: 0 for u in sorted(unseen)}
    who = f"{stage}: pseudo-features: the previous round's classifier"
    for _, features, confidence, top in score_unlabelled_pixels(cache, classifier, batch_size, device, who):
        confident = torch.isin(top, unseen_tensor) & (confidence >= threshold)
        for u in selected:
            mask = confident & (top == u)
            candidates[u] += int(mask.sum())
            if not mask.any():
                continue
            merged = torch.cat([selected[u][0], features[mask]])
            merged_confidence = torch.cat([selected[u][1], confidence[mask]])
            order = torch.argsort(-merged_confidence, stable=True)[:per_class_cap]
            selected[u] = (merged[order], merged_confidence[order])
    stats, parts = {}, []
    for u, (features, confidence) in selected.items():
        kept = features.shape[0] >= max(min_count, 1)
        stats[cache.class_names[u]] = {"confident_pixels": candidates[u], "kept": features.shape[0] if kept else 0,
                                       "skipped": not kept}
        if kept:
            parts.append((features, torch.full((features.shape[0],), u, dtype=torch.int64), confidence))
    if not parts:
        return PseudoFeatures(torch.empty(0, cache.feature_dim), torch.empty(0, dtype=torch.int64),
                              torch.empty(0)), stats
    return PseudoFeatures(*(torch.cat(column) for column in zip(*parts))), stats
