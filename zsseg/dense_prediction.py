"""Dense class predictions from cached or fresh feature maps: logits upsampled bilinearly, then argmax.

The evaluate stage, the report's qualitative grids and `zsseg predict` all classify through here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zsseg.errors import NumericalError
from zsseg.feature_cache import CacheBatch

IMAGES_PER_UPSAMPLE = 16


@torch.no_grad()
def predict(batch: CacheBatch, classifier: nn.Linear, device: torch.device) -> list[torch.Tensor]:
    """Dense predictions at each image's label resolution: logits upsampled bilinearly, then argmax.

    Consecutive images of one size are classified and upsampled together.
    """
    classifier = classifier.to(device)
    shapes = batch.feature_shapes
    predictions: list[torch.Tensor] = []
    start, row = 0, 0
    while start < len(shapes):
        stop = start + 1
        while (stop < len(shapes) and shapes[stop] == shapes[start]
               and batch.labels[stop].shape == batch.labels[start].shape):
            stop += 1
        # Images of one size lie one after the other in the batch: a view of them, not a copy.
        height, width = shapes[start]
        rows = (stop - start) * height * width
        features = batch.features[row:row + rows].reshape(stop - start, height, width, -1)
        predictions.extend(dense_labels(classifier, features, tuple(batch.labels[start].shape), device,
                                        f"prediction: image {batch.ids[start]!r}.."))
        start, row = stop, row + rows
    return predictions


@torch.no_grad()
def dense_labels(classifier: nn.Linear, features: torch.Tensor, size: tuple[int, int], device: torch.device,
                 where: str) -> torch.Tensor:
    """Class indices (B, H, W) of feature maps (B, h, w, D) of one size: logits upsampled bilinearly
    to ``size``, then argmax. The evaluate stage and `zsseg predict` both classify through here."""
    logits = classifier.to(device)(features.to(device)).permute(0, 3, 1, 2)
    if not torch.isfinite(logits).all():
        raise NumericalError(f"{where}: logits contain NaN or Inf")
    # A few images at a time: their full-size logits stay in the CPU's caches (16 demo images: 22 MB; 64 at
    # once took 1.4x as long). Each image's result is the same either way.
    labels = []
    for chunk in logits.split(IMAGES_PER_UPSAMPLE):
        upsampled = F.interpolate(chunk, size=size, mode="bilinear", align_corners=False)
        # The class axis is innermost (channels_last): a max over the last axis of that view is faster than
        # argmax over dim 1, with the same first-maximum indices.
        labels.append(upsampled.permute(0, 2, 3, 1).max(dim=-1).indices.cpu())
    return torch.cat(labels)
