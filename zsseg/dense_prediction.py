"""Dense class predictions from the network's feature maps: logits upsampled bilinearly, then argmax.

The evaluate stage, the report's qualitative grids and `zsseg predict` all classify through here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zsseg.errors import NumericalError
from zsseg.feature_extraction import SplitBatch

IMAGES_PER_UPSAMPLE = 16


@torch.no_grad()
def predict(batch: SplitBatch, classifier: nn.Linear, device: torch.device) -> list[torch.Tensor]:
    """Dense predictions of a batch of images of one size, at their labels' resolution."""
    labels = dense_labels(classifier, batch.features, tuple(batch.labels[0].shape), device,
                          f"prediction: image {batch.ids[0]!r}..")
    return list(labels)


@torch.no_grad()
def dense_labels(classifier: nn.Linear, features: torch.Tensor, size: tuple[int, int], device: torch.device,
                 where: str) -> torch.Tensor:
    """Class indices (B, H, W) of feature maps (B, h, w, D) of one size: logits upsampled bilinearly
    to ``size``, then argmax. The evaluate stage and `zsseg predict` both classify through here.

    The features are rounded to float16 first. The same image's features computed along two paths (the
    encoder's shared maps of a batch, or the encoder on that one image) differ in their last float32 digits,
    which could flip a pixel whose two top logits tie; rounded, they are the same, so `zsseg predict`
    reproduces the evaluate stage's prediction.
    """
    logits = classifier.to(device)(features.to(device).half().float()).permute(0, 3, 1, 2)
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
