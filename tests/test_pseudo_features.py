"""Pseudo-feature mining on a hand-made cache and classifier: the pool, the threshold, the caps, the
selection and the weights, each checked against values computed here from the softmax formula."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import write_caches_by_hand
from zsseg.config import RecursionParams
from zsseg.pseudo_features import extract_pseudo_features
from zsseg.rounds import mining_line

CPU = torch.device("cpu")
# Three images of 1x4 feature pixels; feature x is the first coordinate. Image 0 is labelled (its pixels
# carry labels), images 1 and 2 are unlabelled (they hold an unseen object, so the cache has no label).
X = [[0.95, 0.90, 0.10, 0.60], [0.80, 0.97, 0.50, 0.30], [0.85, 0.70, 0.93, 0.20]]
UNLABELLED = [False, True, True]


def confidence(x: float) -> float:
    """Softmax confidence of class 2 under logits (0, 0, 20 x - 8): the classifier below."""
    z = 20 * x - 8
    return math.exp(z) / (2 + math.exp(z))


@pytest.fixture
def cache(tmp_path):
    """The labelled image in labelled.h5, the unlabelled ones in pool.h5 (the mining pool)."""
    images = [(f"image{index}", np.array([[[x, 0.0] for x in row]], np.float32),
               None if unlabelled else np.full((1, 4), 1, np.uint8))
              for index, (row, unlabelled) in enumerate(zip(X, UNLABELLED))]
    return write_caches_by_hand(tmp_path, images, ["background", "a", "b"], [2])


@pytest.fixture
def classifier():
    layer = nn.Linear(2, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.0, 0.0], [0.0, 0.0], [20.0, 0.0]]))
        layer.bias.copy_(torch.tensor([0.0, 0.0, -8.0]))
    return layer


def params(**overrides):
    values = dict(rounds={1: 0}, threshold=0.9, per_class_cap=100, min_count=1, zs_mmd_lambda=1.0,
                  generator_steps=1, mining_pool="unlabelled_images", weighting="confidence",
                  selection="most_confident", per_image_cap=None, allow_empty_rounds=False,
                  pseudo_labels_in_classifier=False)
    return RecursionParams(**{**values, **overrides})


def mined_x(pseudo) -> list[float]:
    return sorted(round(float(x), 2) for x in pseudo.features[:, 0])


def stored(x: float) -> float:
    """The cache keeps float16 features: the confidence of what it stores."""
    return confidence(float(np.float16(x)))


def test_the_pool_is_every_pixel_of_the_unlabelled_images(cache, classifier):
    threshold = 0.9  # confidence(x) >= 0.9 exactly when x >= 0.4 + ln(18) / 20 = 0.5445
    above = [x for row in X for x in row if confidence(x) >= threshold]
    assert sorted(above) == [0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97]
    pseudo, stats = extract_pseudo_features(cache, classifier, [2], params(threshold=threshold), 2, CPU, 0)
    assert mined_x(pseudo) == [0.7, 0.8, 0.85, 0.93, 0.97]           # images 1 and 2 only
    assert stats["b"] == {"confident_pixels": 5, "after_caps": 5, "kept": 5, "skipped": False}
    everything, _ = extract_pseudo_features(cache, classifier, [2], params(mining_pool="all_images"), 2, CPU, 0)
    assert mined_x(everything) == [0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97]


def test_the_class_cap_keeps_the_most_confident(cache, classifier):
    pseudo, stats = extract_pseudo_features(cache, classifier, [2], params(per_class_cap=2), 1, CPU, 0)
    assert mined_x(pseudo) == [0.93, 0.97]
    assert stats["b"]["confident_pixels"] == 5 and stats["b"]["kept"] == 2


def test_the_image_cap_keeps_the_most_confident_of_each_image(cache, classifier):
    pseudo, _ = extract_pseudo_features(cache, classifier, [2], params(per_image_cap=1), 3, CPU, 0)
    assert mined_x(pseudo) == [0.93, 0.97]                           # the best of image 1 and of image 2
    pseudo, _ = extract_pseudo_features(cache, classifier, [2], params(per_image_cap=2, per_class_cap=3), 3, CPU, 0)
    assert mined_x(pseudo) == [0.85, 0.93, 0.97]


def test_random_selection_draws_among_the_candidates_by_the_seed(cache, classifier):
    candidates = {0.7, 0.8, 0.85, 0.93, 0.97}
    draws = [tuple(mined_x(extract_pseudo_features(cache, classifier, [2],
                                                   params(selection="random_above_threshold", per_class_cap=2),
                                                   2, CPU, seed)[0])) for seed in range(12)]
    assert all(len(draw) == 2 and set(draw) <= candidates for draw in draws)
    assert draws[3] == tuple(mined_x(extract_pseudo_features(
        cache, classifier, [2], params(selection="random_above_threshold", per_class_cap=2), 2, CPU, 3)[0]))
    assert len(set(draws)) > 1 and any(draw != (0.93, 0.97) for draw in draws)


@pytest.mark.parametrize("weighting, expected", [
    ("confidence", lambda c, t: c), ("rescaled", lambda c, t: (c - t) / (1 - t)), ("uniform", lambda c, t: 1.0)])
def test_confidences_carry_through_to_the_weights(cache, classifier, weighting, expected):
    threshold = 0.9
    pseudo, _ = extract_pseudo_features(cache, classifier, [2], params(weighting=weighting), 2, CPU, 0)
    features, weights = pseudo.by_class()[2]
    for x, c, w in zip(features[:, 0].tolist(), pseudo.confidences.tolist(), weights.tolist()):
        assert c == pytest.approx(stored(x), rel=1e-5)
        assert w == pytest.approx(expected(stored(x), threshold), rel=1e-4, abs=1e-6)


def test_a_class_below_min_count_is_dropped(cache, classifier):
    pseudo, stats = extract_pseudo_features(cache, classifier, [2], params(min_count=6, per_class_cap=10), 2, CPU, 0)
    assert stats["b"] == {"confident_pixels": 5, "after_caps": 5, "kept": 0, "skipped": True}
    assert pseudo.features.shape[0] == 0


def test_min_count_is_judged_after_the_caps_and_logged_so(cache, classifier):
    """Five confident pixels, two left by one per image: under min_count 3, skipped for the two."""
    pseudo, stats = extract_pseudo_features(cache, classifier, [2], params(min_count=3, per_image_cap=1), 2, CPU, 0)
    assert stats["b"] == {"confident_pixels": 5, "after_caps": 2, "kept": 0, "skipped": True}
    assert pseudo.features.shape[0] == 0
    assert mining_line("b", stats["b"], 3) == ("b: 2 pseudo-features after the caps (of 5 confident pixels) "
                                               "< min_count 3; skipped")
    _, kept = extract_pseudo_features(cache, classifier, [2], params(min_count=2, per_image_cap=1), 2, CPU, 0)
    assert mining_line("b", kept["b"], 2) == "b: 2 pseudo-features (of 5 confident pixels)"
