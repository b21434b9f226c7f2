"""ZS5Net, ZS3Net's self-training baseline: round 0's classifier pseudo-labels the unlabelled training
pixels, the most confident share per unseen class is kept, and the classifier is retrained with them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from zsseg.classifier import load_classifier, train_classifier
from zsseg.config import Params
from zsseg.feature_cache import TrainingCaches
from zsseg.generator import generate_features, load_generator
from zsseg.labels import ignored_classes
from zsseg.pseudo_features import MINING_POOLS, first_per_group, score_pool
from zsseg.runtime import SeedPurpose, derive_seed
from zsseg.sampling import SeenSamples


def top_percent_mask(confidences: torch.Tensor, predicted: torch.Tensor, classes: Sequence[int], percent: float,
                     groups: torch.Tensor | None = None) -> torch.Tensor:
    """ZS5Net's selection: per class c (and per group, an image with ``top_by_image``), the
    ceil(percent % of n) most confident of the n pixels predicted as c. Equal confidences are broken by
    position, earlier first, so the count is exact."""
    groups = torch.zeros_like(predicted) if groups is None else groups
    selected = torch.zeros(confidences.shape[0], dtype=torch.bool)
    for c in classes:
        selected |= first_per_group(groups, -confidences, predicted == c,
                                    lambda size: torch.ceil(size.double() * (percent / 100.0)).long())
    return selected


# self_training.selection: the groups within which the top share is taken, from each pixel's image.
SELF_TRAINING_SELECTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "top_by_image": lambda images: images,
    "top_over_split": lambda images: torch.zeros_like(images),
}


@torch.no_grad()
def self_training_features(caches: TrainingCaches, classifier: nn.Linear, unseen: Sequence[int], percent: float,
                           selection: str, per_class_cap: int, pool: str, batch_size: int,
                           device: torch.device) -> tuple[dict[int, torch.Tensor], dict[str, dict]]:
    """ZS5Net's pseudo-labels on the mining pool (``recursion.mining_pool``), in two streamed passes.

    Pass one scores every pixel of the pool; the top ``percent`` % of the pixels predicted as each
    unseen class are selected in each image, or over the whole split (``selection``). Pass two
    collects their features (at most ``per_class_cap`` per class, the most confident first).
    """
    # Ten bytes per pool pixel (a full VOC pool has about 50 million), in the narrowest types that hold
    # them, allocated once: per-batch pieces left between the batches' buffers fragment the heap, which
    # then grows with the pool (zsseg.runtime.keep_freed_memory keeps freed buffers in it).
    total = sum(cache.pixel_count for cache in MINING_POOLS[pool](caches))
    confidences = torch.empty(total)
    predicted = torch.empty(total, dtype=torch.int16)
    images = torch.empty(total, dtype=torch.int32)
    offset = 0
    for pixels in score_pool(caches, classifier, pool, batch_size, device, "self_training: round 0's classifier"):
        window = slice(offset, offset + pixels.confidence.numel())
        offset = window.stop
        confidences[window], predicted[window], images[window] = pixels.confidence, pixels.top, pixels.images
    selected = top_percent_mask(confidences, predicted, unseen, percent, SELF_TRAINING_SELECTIONS[selection](images))
    for c in unseen:
        in_class = torch.nonzero(selected & (predicted == c)).reshape(-1)
        if in_class.numel() > per_class_cap:
            drop = in_class[torch.argsort(-confidences[in_class], stable=True)[per_class_cap:]]
            selected[drop] = False
    # The selected features, in pool order, filled into one buffer for the same reason.
    collected = torch.empty(int(selected.sum()), caches.feature_dim)
    offset, filled = 0, 0
    for cache in MINING_POOLS[pool](caches):
        for batch in cache.batches(batch_size):
            window = slice(offset, offset + batch.features.shape[0])
            offset = window.stop
            chosen = batch.features[selected[window]]
            collected[filled:filled + chosen.shape[0]] = chosen
            filled += chosen.shape[0]
    collected_classes = predicted[selected]
    pseudo = {c: collected[collected_classes == c] for c in unseen if bool((collected_classes == c).any())}
    stats = {caches.class_names[c]: {"predicted_pixels": int((predicted == c).sum()),
                                    "kept": int(pseudo[c].shape[0]) if c in pseudo else 0} for c in unseen}
    return pseudo, stats


def train_self_training(params: Params, previous: str | Path, caches: TrainingCaches, samples: SeenSamples,
                        embeddings: torch.Tensor, device: torch.device,
                        log: Callable[[str], None]) -> tuple[nn.Linear, dict]:
    """ZS5Net: round 0's classifier pseudo-labels the mining pool, the top ``self_training.top_percent`` %
    per unseen class (in each image, by default) are kept, and the classifier is retrained on real seen +
    generated unseen + those pixels. The generator is not fed."""
    stage = "self_training"
    pseudo, stats = self_training_features(caches, load_classifier(previous), caches.unseen,
                                           params.self_training.top_percent, params.self_training.selection,
                                           params.self_training.per_class_cap, params.recursion.mining_pool,
                                           params.evaluate.batch_size, device)
    for name, count in stats.items():
        log(f"{name}: {count['kept']} pseudo-labelled pixels (of {count['predicted_pixels']} predicted)")
    generated = generate_features(load_generator(previous, embeddings), embeddings, caches.unseen,
                                  params.classifier.generated_per_class,
                                  derive_seed(params.seed, SeedPurpose.SELF_TRAINING_FEATURES), device, stage)
    unseen_features = {u: torch.cat([generated[u], *([pseudo[u]] if u in pseudo else [])]) for u in caches.unseen}
    seed = derive_seed(params.seed, SeedPurpose.SELF_TRAINING_CLASSIFIER)
    classifier, classifier_log = train_classifier({**samples.classifier, **unseen_features},
                                                  len(caches.class_names), params.classifier, seed, device, stage,
                                                  caches.unseen, masked=ignored_classes(params.dataset.background))
    return classifier, {"pseudo_labels": stats, "classifier": classifier_log}
