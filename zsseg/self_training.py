"""ZS5Net, ZS3Net's self-training baseline: round 0's classifier pseudo-labels the unlabelled training
pixels, the most confident share per unseen class is kept, and the classifier is retrained with them."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from zsseg.classifier import load_classifier, train_classifier
from zsseg.config import Params
from zsseg.feature_cache import FeatureCache
from zsseg.generator import generate_features, load_generator
from zsseg.pseudo_features import score_unlabelled_pixels, unlabelled_pixels
from zsseg.runtime import derive_seed
from zsseg.sampling import seen_class_features

# The seed key of the self-training stage: it must not share generated features with any round.
SELF_TRAINING_KEY = 1_000_000


def top_percent_mask(confidences: torch.Tensor, predicted: torch.Tensor, classes: Sequence[int],
                     percent: float) -> torch.Tensor:
    """ZS5Net's selection: per class c, the ceil(percent % of n_c) most confident of the n_c pixels
    predicted as c. Equal confidences are broken by position, earlier first, so the count is exact."""
    selected = torch.zeros(confidences.shape[0], dtype=torch.bool)
    for c in classes:
        candidates = torch.nonzero(predicted == c).reshape(-1)
        keep = math.ceil(percent / 100.0 * candidates.numel())
        if keep == 0:
            continue
        order = torch.argsort(-confidences[candidates], stable=True)[:keep]
        selected[candidates[order]] = True
    return selected


@torch.no_grad()
def self_training_features(cache: FeatureCache, classifier: nn.Linear, unseen: Sequence[int], percent: float,
                           per_class_cap: int, batch_size: int,
                           device: torch.device) -> tuple[dict[int, torch.Tensor], dict[str, dict]]:
    """ZS5Net's pseudo-labels on the unlabelled (255) training pixels, in two streamed passes.

    Pass one scores every unlabelled pixel; the top ``percent`` % of the pixels predicted as each
    unseen class are selected over the whole split. Pass two collects their features (at most
    ``per_class_cap`` per class, the most confident first).
    """
    confidences, predicted = [], []
    for _, _, confidence, top in score_unlabelled_pixels(cache, classifier, batch_size, device,
                                                         "self_training: round 0's classifier"):
        confidences.append(confidence)
        predicted.append(top)
    confidences = torch.cat(confidences) if confidences else torch.empty(0)
    predicted = torch.cat(predicted) if predicted else torch.empty(0, dtype=torch.int64)
    selected = top_percent_mask(confidences, predicted, unseen, percent)
    for c in unseen:
        in_class = torch.nonzero(selected & (predicted == c)).reshape(-1)
        if in_class.numel() > per_class_cap:
            drop = in_class[torch.argsort(-confidences[in_class], stable=True)[per_class_cap:]]
            selected[drop] = False
    collected: dict[int, list[torch.Tensor]] = {c: [] for c in unseen}
    offset = 0
    for batch in cache.batches(batch_size):
        features = batch.features[unlabelled_pixels(batch)]
        window = slice(offset, offset + features.shape[0])
        offset += features.shape[0]
        for c in unseen:
            mask = selected[window] & (predicted[window] == c)
            if mask.any():
                collected[c].append(features[mask])
    pseudo = {c: torch.cat(parts) for c, parts in collected.items() if parts}
    stats = {cache.class_names[c]: {"predicted_pixels": int((predicted == c).sum()),
                                    "kept": int(pseudo[c].shape[0]) if c in pseudo else 0} for c in unseen}
    return pseudo, stats


def train_self_training(params: Params, previous: str | Path, cache: FeatureCache, embeddings: torch.Tensor,
                        device: torch.device, log: Callable[[str], None]) -> tuple[nn.Linear, dict]:
    """ZS5Net: round 0's classifier pseudo-labels the unlabelled training pixels, the top
    ``self_training.top_percent`` % per unseen class are kept, and the classifier is retrained on real
    seen + generated unseen + those pixels. The generator is not fed."""
    stage = "self_training"
    pseudo, stats = self_training_features(cache, load_classifier(previous), cache.unseen,
                                           params.self_training.top_percent, params.self_training.per_class_cap,
                                           params.evaluate.batch_size, device)
    for name, count in stats.items():
        log(f"{name}: {count['kept']} pseudo-labelled pixels (of {count['predicted_pixels']} predicted)")
    real = seen_class_features(params, cache, log)
    generated = generate_features(load_generator(previous, embeddings), embeddings, cache.unseen,
                                  params.classifier.generated_per_class,
                                  derive_seed(params.seed, 3, SELF_TRAINING_KEY), device, stage)
    unseen_features = {u: torch.cat([generated[u], *([pseudo[u]] if u in pseudo else [])]) for u in cache.unseen}
    classifier, classifier_log = train_classifier({**real, **unseen_features}, len(cache.class_names),
                                                  params.classifier, derive_seed(params.seed, 4, SELF_TRAINING_KEY),
                                                  device, stage)
    return classifier, {"pseudo_labels": stats, "classifier": classifier_log}
