"""The backbone's training loss upsamples its logits with two matrix products: F.interpolate's bilinear
upsampling (align_corners=False), value and gradient, up to float rounding. Dense predictions upsample a
few images at a time, with the labels of all at once."""

import pytest
import torch
import torch.nn.functional as F

from zsseg.backbone_training import bilinear_weights, upsample_bilinear
from zsseg.dense_prediction import IMAGES_PER_UPSAMPLE, dense_labels


@pytest.mark.parametrize("shape, size", [((2, 3, 16, 16), (128, 128)), ((1, 4, 13, 17), (50, 67)),
                                         ((1, 2, 9, 9), (4, 5)), ((1, 1, 1, 3), (6, 7))],
                         ids=["x8", "uneven", "down", "one-row"])
def test_matches_interpolate_in_value_and_gradient(shape, size):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(shape, generator=generator, dtype=torch.float64)
    upstream = torch.randn(*shape[:2], *size, generator=generator, dtype=torch.float64)
    ours, theirs = inputs.float().clone().requires_grad_(), inputs.clone().requires_grad_()
    upsampled = upsample_bilinear(ours, size)
    (upsampled.double() * upstream).sum().backward()
    reference = F.interpolate(theirs, size=size, mode="bilinear", align_corners=False)
    (reference * upstream).sum().backward()
    torch.testing.assert_close(upsampled.double(), reference, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours.grad.double(), theirs.grad, rtol=1e-5, atol=1e-5)


def test_weights_by_hand():
    # 2 -> 4 px: sources at -0.25 (clamped to 0), 0.25, 0.75, 1.25 (second tap clamped to the last pixel).
    expected = torch.tensor([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]])
    assert torch.equal(bilinear_weights(4, 2), expected)


def test_dense_labels_in_chunks_equal_the_argmax_of_every_image_at_once():
    generator = torch.Generator().manual_seed(0)
    count = 2 * IMAGES_PER_UPSAMPLE + 3  # two whole chunks and a part
    classifier = torch.nn.Linear(8, 5)
    features = torch.randn(count, 6, 7, 8, generator=generator)
    labels = dense_labels(classifier, features, (24, 29), torch.device("cpu"), "test")
    with torch.no_grad():
        logits = F.interpolate(classifier(features.half().float()).permute(0, 3, 1, 2), size=(24, 29), mode="bilinear",
                               align_corners=False)
    assert labels.shape == (count, 24, 29)
    assert torch.equal(labels, logits.argmax(dim=1))
