"""Dense class predictions from the network's feature maps: logits upsampled bilinearly, then argmax.

The evaluate stage, the report's qualitative grids and `zsseg predict` all classify through here.

Test-time augmentation (``evaluate.scales``, ``evaluate.flip``; off by default, as in ZS3Net) is DeepLab's
multi-scale inference (``predict_labels_multi_scale`` in tensorflow/models' research/deeplab/model.py): per
scale, the image is resized and the network run on it, the logits are upsampled bilinearly to the labels'
resolution and turned into softmax probabilities; with flip, the mirrored image's too, mirrored back. The
probabilities are averaged over these views, and the argmax taken at the end (:class:`TestTimeAugmentation`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from zsseg.errors import NumericalError
from zsseg.feature_extraction import SplitBatch, network_features
from zsseg.network import SegmentationNetwork

IMAGES_PER_UPSAMPLE = 16
# Test-time augmentation sums every classifier's probabilities at the labels' resolution for a chunk of images
# at a time: at most this many bytes of sums per chunk (512 MiB), unless one image alone needs more.
AUGMENTATION_SUM_BYTES = 2 ** 29


@torch.no_grad()
def predict(batch: SplitBatch, classifier: nn.Linear, device: torch.device) -> list[torch.Tensor]:
    """Dense predictions of a batch of images of one size, at their labels' resolution."""
    labels = dense_labels(classifier, batch.features, tuple(batch.labels[0].shape), device,
                          f"prediction: image {batch.ids[0]!r}..")
    return list(labels)


def rounded_logits(classifier: nn.Linear, features: torch.Tensor, device: torch.device, where: str) -> torch.Tensor:
    """The logits (B, C, h, w) of feature maps (B, h, w, D) rounded to float16 first (dense_labels says why);
    NaN or Inf stops with ``where`` named."""
    logits = classifier.to(device)(features.to(device).half().float()).permute(0, 3, 1, 2)
    if not torch.isfinite(logits).all():
        raise NumericalError(f"{where}: logits contain NaN or Inf")
    return logits


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
    logits = rounded_logits(classifier, features, device, where)
    # A few images at a time: their full-size logits stay in the CPU's caches (16 demo images: 22 MB; 64 at
    # once took 1.4x as long). Each image's result is the same either way.
    labels = []
    for chunk in logits.split(IMAGES_PER_UPSAMPLE):
        upsampled = F.interpolate(chunk, size=size, mode="bilinear", align_corners=False)
        # The class axis is innermost (channels_last): a max over the last axis of that view is faster than
        # argmax over dim 1, with the same first-maximum indices.
        labels.append(upsampled.permute(0, 2, 3, 1).max(dim=-1).indices.cpu())
    return torch.cat(labels)


def augmented(scales: Sequence[float], flip: bool) -> bool:
    """Whether ``evaluate.scales`` and ``evaluate.flip`` ask for test-time augmentation: [1.0] and false do not,
    and then every caller keeps the plain path above (dense_labels), bit for bit."""
    return list(scales) != [1.0] or flip


def rescale(image: np.ndarray, scale: float) -> np.ndarray:
    """An (H, W, 3) uint8 RGB image resized by ``scale`` as the backbone's training rescales its images
    (zsseg/backbone_training.py): PIL's bilinear filter on the uint8 image, each side rounded, at least 1.
    The network normalises its [0, 255] input itself, so the resized image goes in as any image does."""
    if scale == 1:
        return image
    height, width = max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale))
    return np.array(Image.fromarray(image).resize((width, height), Image.BILINEAR))


@torch.no_grad()
def view_probabilities(classifier: nn.Linear, features: torch.Tensor, size: tuple[int, int], flipped: bool,
                       device: torch.device, where: str) -> torch.Tensor:
    """Softmax probabilities (B, C, H, W) of one view's feature maps (B, h, w, D): the logits of the features
    rounded to float16 (as dense_labels rounds them), upsampled bilinearly to ``size``, softmax over the
    classes; a flipped view's mirrored back."""
    logits = rounded_logits(classifier, features, device, where)
    probabilities = F.interpolate(logits, size=size, mode="bilinear", align_corners=False).softmax(dim=1)
    return probabilities.flip(-1) if flipped else probabilities


class TestTimeAugmentation:
    """DeepLab's multi-scale (and flipped) inference, see the module docstring. ``features`` gives the feature
    maps (B, h, w, D) of a list of equal-size (H, W, 3) uint8 images: the whole network on them
    (:meth:`of_network`). The encode stage's shared encoder maps (zsseg/encoder_maps.py) hold each image at
    scale 1 only, so every view, scale 1 included, runs the encoder on the image it sees.

    Memory: the probability sums of a chunk of images stay under AUGMENTATION_SUM_BYTES (every classifier's),
    and a view of a chunk runs the network on as many images as hold the chunk's pixels at scale 1 (at scale
    1.75, a third of them), so a pass of the network holds no more than the unaugmented one, unless a single
    image at that scale does.
    """

    __test__ = False  # not a pytest class

    def __init__(self, features: Callable[[list[np.ndarray]], torch.Tensor], scales: Sequence[float], flip: bool,
                 device: torch.device) -> None:
        self.features, self.scales, self.flip, self.device = features, [float(s) for s in scales], flip, device

    @classmethod
    def of_network(cls, network: SegmentationNetwork, scales: Sequence[float], flip: bool, device: torch.device,
                   use_mixed_precision: bool) -> TestTimeAugmentation:
        network = network.to(device).eval()
        return cls(lambda images: torch.from_numpy(network_features(network, images, device, use_mixed_precision)),
                   scales, flip, device)

    @property
    def views(self) -> int:
        """Network passes per image."""
        return len(self.scales) * (2 if self.flip else 1)

    @torch.no_grad()
    def labels(self, classifiers: Sequence[nn.Linear], images: Sequence[np.ndarray], where: str) -> list[torch.Tensor]:
        """Per classifier, the class indices (B, H, W) of equal-size (H, W, 3) uint8 images: the argmax of
        the softmax probabilities summed over the views (the first maximum, as dense_labels takes it)."""
        size = tuple(images[0].shape[:2])
        classes = sum(classifier.out_features for classifier in classifiers)
        per_chunk = max(1, AUGMENTATION_SUM_BYTES // (4 * classes * size[0] * size[1]))
        labels: list[list[torch.Tensor]] = [[] for _ in classifiers]
        for start in range(0, len(images), per_chunk):
            chunk = images[start:start + per_chunk]
            sums = [torch.zeros((len(chunk), classifier.out_features, *size), device=self.device)
                    for classifier in classifiers]
            for scale in self.scales:
                per_pass = max(1, int(len(chunk) / scale ** 2))
                for first in range(0, len(chunk), per_pass):
                    rescaled = [rescale(image, scale) for image in chunk[first:first + per_pass]]
                    for flipped in (False, True) if self.flip else (False,):
                        view = [np.ascontiguousarray(image[:, ::-1]) for image in rescaled] if flipped else rescaled
                        features = self.features(view)
                        for total, classifier in zip(sums, classifiers):
                            total[first:first + len(view)] += view_probabilities(
                                classifier, features, size, flipped, self.device,
                                f"{where} (scale {scale:g}{', flipped' if flipped else ''})")
            for found, total in zip(labels, sums):
                found.append(total.permute(0, 2, 3, 1).max(dim=-1).indices.cpu())
        return [torch.cat(found) for found in labels]
