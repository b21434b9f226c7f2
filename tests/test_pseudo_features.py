"""Pseudo-feature mining on a hand-made cache and classifier: the pool, the threshold, the caps, the
selection and the weights, each checked against values computed here from the softmax formula."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import write_caches_by_hand
from zsseg.config import RecursionParams
from zsseg.errors import InputError
from zsseg.pseudo_features import (POOL_PREDICTIONS_FILE, class_thresholds, extract_pseudo_features,
                                   load_pool_predictions, save_pool_predictions)
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
                  pseudo_labels_in_classifier=False, thresholds="global", class_top_percent=20,
                  class_threshold_floor=0.5, guard="none")
    return RecursionParams(**{**values, **overrides})


def mine(*args, **kwargs):
    """(pseudo-features, per-class stats) of one mining."""
    mining = extract_pseudo_features(*args, **kwargs)
    return mining.pseudo_features, mining.stats


def stats_of(confident, after_caps, kept, threshold=0.9, disagreeing=0):
    return {"threshold": threshold, "confident_pixels": confident, "disagreeing_pixels": disagreeing,
            "after_caps": after_caps, "kept": kept, "skipped": kept == 0}


def mined_x(pseudo) -> list[float]:
    return sorted(round(float(x), 2) for x in pseudo.features[:, 0])


def stored(x: float) -> float:
    """The cache keeps float16 features: the confidence of what it stores."""
    return confidence(float(np.float16(x)))


def test_the_pool_is_every_pixel_of_the_unlabelled_images(cache, classifier):
    threshold = 0.9  # confidence(x) >= 0.9 exactly when x >= 0.4 + ln(18) / 20 = 0.5445
    above = [x for row in X for x in row if confidence(x) >= threshold]
    assert sorted(above) == [0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97]
    pseudo, stats = mine(cache, classifier, [2], params(threshold=threshold), 2, CPU, 0)
    assert mined_x(pseudo) == [0.7, 0.8, 0.85, 0.93, 0.97]           # images 1 and 2 only
    assert stats["b"] == stats_of(5, 5, 5)
    everything, _ = mine(cache, classifier, [2], params(mining_pool="all_images"), 2, CPU, 0)
    assert mined_x(everything) == [0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97]


def test_the_class_cap_keeps_the_most_confident(cache, classifier):
    pseudo, stats = mine(cache, classifier, [2], params(per_class_cap=2), 1, CPU, 0)
    assert mined_x(pseudo) == [0.93, 0.97]
    assert stats["b"]["confident_pixels"] == 5 and stats["b"]["kept"] == 2


def test_the_image_cap_keeps_the_most_confident_of_each_image(cache, classifier):
    pseudo, _ = mine(cache, classifier, [2], params(per_image_cap=1), 3, CPU, 0)
    assert mined_x(pseudo) == [0.93, 0.97]                           # the best of image 1 and of image 2
    pseudo, _ = mine(cache, classifier, [2], params(per_image_cap=2, per_class_cap=3), 3, CPU, 0)
    assert mined_x(pseudo) == [0.85, 0.93, 0.97]


def test_random_selection_draws_among_the_candidates_by_the_seed(cache, classifier):
    candidates = {0.7, 0.8, 0.85, 0.93, 0.97}
    draws = [tuple(mined_x(mine(cache, classifier, [2],
                                                   params(selection="random_above_threshold", per_class_cap=2),
                                                   2, CPU, seed)[0])) for seed in range(12)]
    assert all(len(draw) == 2 and set(draw) <= candidates for draw in draws)
    assert draws[3] == tuple(mined_x(mine(
        cache, classifier, [2], params(selection="random_above_threshold", per_class_cap=2), 2, CPU, 3)[0]))
    assert len(set(draws)) > 1 and any(draw != (0.93, 0.97) for draw in draws)


@pytest.mark.parametrize("weighting, expected", [
    ("confidence", lambda c, t: c), ("rescaled", lambda c, t: (c - t) / (1 - t)), ("uniform", lambda c, t: 1.0)])
def test_confidences_carry_through_to_the_weights(cache, classifier, weighting, expected):
    threshold = 0.9
    pseudo, _ = mine(cache, classifier, [2], params(weighting=weighting), 2, CPU, 0)
    features, weights = pseudo.by_class()[2]
    for x, c, w in zip(features[:, 0].tolist(), pseudo.confidences.tolist(), weights.tolist()):
        assert c == pytest.approx(stored(x), rel=1e-5)
        assert w == pytest.approx(expected(stored(x), threshold), rel=1e-4, abs=1e-6)


def test_a_class_below_min_count_is_dropped(cache, classifier):
    pseudo, stats = mine(cache, classifier, [2], params(min_count=6, per_class_cap=10), 2, CPU, 0)
    assert stats["b"] == stats_of(5, 5, 0)
    assert pseudo.features.shape[0] == 0


def test_min_count_is_judged_after_the_caps_and_logged_so(cache, classifier):
    """Five confident pixels, two left by one per image: under min_count 3, skipped for the two."""
    pseudo, stats = mine(cache, classifier, [2], params(min_count=3, per_image_cap=1), 2, CPU, 0)
    assert stats["b"] == stats_of(5, 2, 0)
    assert pseudo.features.shape[0] == 0
    assert mining_line("b", stats["b"], 3) == ("b: 2 pseudo-features after the caps (of 5 confident pixels, "
                                               "threshold 0.9000) < min_count 3; skipped")
    _, kept = mine(cache, classifier, [2], params(min_count=2, per_image_cap=1), 2, CPU, 0)
    assert mining_line("b", kept["b"], 2) == "b: 2 pseudo-features (of 5 confident pixels, threshold 0.9000)"


def brute_force_threshold(scores: list[float], top_percent: int, floor: float) -> float:
    """The confidence of the ceil(top_percent % x n)-th best score (integer arithmetic), floored."""
    if not scores:
        return math.inf
    rank = max(1, -(-top_percent * len(scores) // 100))
    return max(floor, sorted(scores, reverse=True)[rank - 1])


def test_per_class_thresholds_against_a_brute_force_quantile():
    generator = np.random.default_rng(0)
    for top_percent in (1, 10, 20, 33, 50, 100):
        for count in (1, 2, 7, 10, 101):
            scores = np.round(generator.uniform(0.3, 1.0, size=count), 2).astype(np.float32)  # ties on purpose
            expected = brute_force_threshold(scores.tolist(), top_percent, 0.5)
            assert class_thresholds({3: torch.from_numpy(scores)}, top_percent, 0.5) == {3: expected}
    # 20 % of 10 is 2 in decimal arithmetic (in floats 0.2 * 10 rounds up to 3).
    assert class_thresholds({3: torch.arange(10, 0, -1) / 10}, 20, 0.0) == {3: pytest.approx(0.9)}


def test_per_class_thresholds_for_an_empty_class_a_class_under_the_floor_and_ties():
    thresholds = class_thresholds({3: torch.empty(0), 4: torch.tensor([0.1, 0.2, 0.3]),
                                   5: torch.tensor([0.9, 0.8, 0.8, 0.8, 0.1])}, 40, 0.5)
    assert thresholds[3] == math.inf                       # no pool pixel: nothing can pass
    assert thresholds[4] == 0.5                            # every score under the floor: the floor, none passes
    assert thresholds[5] == pytest.approx(0.8)             # the 2nd best of 5 ...
    assert int((torch.tensor([0.9, 0.8, 0.8, 0.8, 0.1]) >= thresholds[5]).sum()) == 4   # ... and its ties pass


def test_per_class_mining_uses_the_class_s_own_scores_in_the_pool(cache, classifier):
    # Class 2 is the top class of the pool pixels with x > 0.4: 0.8, 0.97, 0.5, 0.85, 0.7, 0.93.
    own = [stored(x) for x in (0.8, 0.97, 0.5, 0.85, 0.7, 0.93)]
    for top_percent, expected in ((20, [0.93, 0.97]), (50, [0.85, 0.93, 0.97]), (100, [0.5, 0.7, 0.8, 0.85, 0.93,
                                                                                           0.97])):
        pseudo, stats = mine(cache, classifier, [2], params(thresholds="per_class", class_top_percent=top_percent,
                                                            class_threshold_floor=0.0), 2, CPU, 0)
        assert mined_x(pseudo) == expected
        assert stats["b"]["threshold"] == pytest.approx(brute_force_threshold(own, top_percent, 0.0), rel=1e-6)
    # A floor above every score: the class is skipped, whatever its share.
    pseudo, stats = mine(cache, classifier, [2], params(thresholds="per_class", class_top_percent=100,
                                                        class_threshold_floor=0.99999), 2, CPU, 0)
    assert stats["b"]["skipped"] and stats["b"]["threshold"] == 0.99999 and pseudo.features.shape[0] == 0


def test_at_most_global_lowers_only_the_thresholds_above_the_global_one(cache, classifier):
    # Class 2's own scores in the pool: 0.8, 0.97, 0.5, 0.85, 0.7, 0.93.
    own = [stored(x) for x in (0.8, 0.97, 0.5, 0.85, 0.7, 0.93)]
    for threshold, top_percent, expected in (
            (stored(0.9), 20, [0.93, 0.97]),               # its own (that of 0.93) is above: the global one
            (stored(0.9), 50, [0.85, 0.93, 0.97]),         # its own (that of 0.85) is lower: its own
            (stored(0.75), 50, [0.8, 0.85, 0.93, 0.97]),   # that of 0.85 is above: the global one again
            (0.99, 100, [0.5, 0.7, 0.8, 0.85, 0.93, 0.97])):  # every pixel: its own, that of 0.5
        pseudo, stats = mine(cache, classifier, [2], params(thresholds="at_most_global", threshold=threshold,
                                                            class_top_percent=top_percent,
                                                            class_threshold_floor=0.0), 2, CPU, 0)
        assert mined_x(pseudo) == expected
        assert stats["b"]["threshold"] == pytest.approx(
            min(threshold, brute_force_threshold(own, top_percent, 0.0)), rel=1e-6)


def test_rescaled_weights_use_the_class_s_own_threshold(cache, classifier):
    pseudo, stats = mine(cache, classifier, [2], params(thresholds="per_class", class_top_percent=50,
                                                        class_threshold_floor=0.0, weighting="rescaled"), 2, CPU, 0)
    threshold = stats["b"]["threshold"]
    for c, w in zip(pseudo.confidences.tolist(), pseudo.weights.tolist()):
        assert w == pytest.approx((c - threshold) / (1 - threshold), rel=1e-4, abs=1e-6)


def test_each_pseudo_feature_names_its_row_in_the_pool(cache, classifier):
    pseudo, _ = mine(cache, classifier, [2], params(mining_pool="all_images"), 2, CPU, 0)
    rows = torch.cat([batch.features.clone() for pool in (cache.pool, cache.labelled) for batch in pool.batches(2)])
    assert rows.shape[0] == 12
    assert torch.equal(rows[pseudo.rows], pseudo.features)


def test_the_agreement_guard_on_a_hand_made_two_round_case(cache, classifier):
    """Round 1 mines with a classifier whose top class of x = 0.97 is a seen class; round 2's classifier
    makes that pixel confidently unseen, and the guard refuses it, as the pixels round 1 saw as unseen pass."""
    earlier = nn.Linear(2, 3)
    with torch.no_grad():
        earlier.weight.copy_(torch.tensor([[0.0, 0.0], [2000.0, 0.0], [20.0, 0.0]]))
        earlier.bias.copy_(torch.tensor([0.0, -1920.0, -8.0]))
    round_1 = extract_pseudo_features(cache, earlier, [2], params(guard="agreement"), 2, CPU, 0)
    # The pool's rows: image 1 (0.8, 0.97, 0.5, 0.3), image 2 (0.85, 0.7, 0.93, 0.2).
    assert round_1.pool_predictions.tolist() == [2, 1, 2, 0, 2, 2, 2, 0]
    round_2 = extract_pseudo_features(cache, classifier, [2], params(guard="agreement"), 2, CPU, 0,
                                      previous_predictions=round_1.pool_predictions)
    assert mined_x(round_2.pseudo_features) == [0.7, 0.8, 0.85, 0.93]
    assert round_2.stats["b"] == stats_of(4, 4, 4, disagreeing=1)
    # The control: without the guard, round 2 keeps the pixel.
    unguarded, _ = mine(cache, classifier, [2], params(), 2, CPU, 0)
    assert mined_x(unguarded) == [0.7, 0.8, 0.85, 0.93, 0.97]
    assert extract_pseudo_features(cache, classifier, [2], params(), 2, CPU, 0).pool_predictions is None


def test_pool_predictions_of_another_pool_are_refused(tmp_path):
    save_pool_predictions(tmp_path, torch.tensor([2, 1, 0], dtype=torch.int16))
    assert load_pool_predictions(tmp_path, 3).tolist() == [2, 1, 0]
    with pytest.raises(InputError, match=f"{tmp_path / POOL_PREDICTIONS_FILE}: \\(3,\\) pool predictions, the "
                                         "mining pool has 8 rows"):
        load_pool_predictions(tmp_path, 8)
    assert load_pool_predictions(tmp_path / "round_0", 8) is None
