"""ZS5Net's top-p % pseudo-label selection, checked on hand-made examples."""

import numpy as np
import torch
from torch import nn

from conftest import write_caches_by_hand
from zsseg.self_training import self_training_features, top_percent_mask


def test_top_percent_keeps_the_most_confident_share_per_class():
    #                 pixel:   0    1    2    3    4    5    6    7    8    9
    confidences = torch.tensor([0.9, 0.5, 0.7, 0.6, 0.2, 0.8, 0.95, 0.3, 0.4, 0.1])
    predicted = torch.tensor([3, 3, 3, 3, 3, 5, 5, 1, 5, 5])
    # Class 3 has 5 pixels: 40 % -> 2 kept (0.9 and 0.7). Class 5 has 4: ceil(1.6) = 2 (0.95 and 0.8).
    # Class 1 is seen: never selected.
    mask = top_percent_mask(confidences, predicted, classes=[3, 5], percent=40)
    assert torch.nonzero(mask).reshape(-1).tolist() == [0, 2, 5, 6]
    assert torch.nonzero(top_percent_mask(confidences, predicted, [3, 5], 100)).reshape(-1).tolist() == \
        [0, 1, 2, 3, 4, 5, 6, 8, 9]
    assert torch.nonzero(top_percent_mask(confidences, predicted, [3], 1)).reshape(-1).tolist() == [0]


def test_equal_confidences_are_broken_by_position():
    mask = top_percent_mask(torch.full((4,), 0.5), torch.full((4,), 2), classes=[2], percent=50)
    assert mask.tolist() == [True, True, False, False]


def write_two_images(directory):
    """Image 0: x = 0.9, 0.2, 0.5 (labelled, so outside the pool by default); image 1: x = 0.8, 0.95, 0.1 and
    image 2: x = 0.85, 0.45, 0.6 (unlabelled)."""
    rows = [[0.9, 0.2, 0.5], [0.8, 0.95, 0.1], [0.85, 0.45, 0.6]]
    images = [(f"image{index}", np.array([[[x, 0] for x in row]], np.float32),
               None if index > 0 else np.full((1, 3), 1, np.uint8)) for index, row in enumerate(rows)]
    caches = write_caches_by_hand(directory, images, ["background", "a", "b"], [2])
    classifier = nn.Linear(2, 3)
    with torch.no_grad():
        classifier.weight.copy_(torch.tensor([[0.0, 0.0], [0.0, 0.0], [20.0, 0.0]]))
        classifier.bias.copy_(torch.tensor([0.0, 0.0, -8.0]))   # class 2 wins where x > 0.4
    return caches, classifier


def kept_x(pseudo):
    return sorted(round(float(x), 2) for x in pseudo[2][:, 0])


def test_top_by_image_takes_the_share_in_each_unlabelled_image(tmp_path):
    cache, classifier = write_two_images(tmp_path)
    pseudo, stats = self_training_features(cache, classifier, [2], percent=50, selection="top_by_image",
                                           per_class_cap=10, pool="unlabelled_images", batch_size=1,
                                           device=torch.device("cpu"))
    # Predicted as class 2 (x > 0.4): image 1 -> 0.8, 0.95 (50 % of 2 -> 1: 0.95); image 2 -> 0.85, 0.45, 0.6
    # (ceil(1.5) = 2: 0.85 and 0.6). Image 0 is labelled: outside the pool.
    assert stats["b"] == {"predicted_pixels": 5, "kept": 3}
    assert kept_x(pseudo) == [0.6, 0.85, 0.95]


def test_top_over_split_ranks_every_pixel_of_the_pool_together(tmp_path):
    cache, classifier = write_two_images(tmp_path)
    pseudo, stats = self_training_features(cache, classifier, [2], percent=50, selection="top_over_split",
                                           per_class_cap=10, pool="unlabelled_images", batch_size=2,
                                           device=torch.device("cpu"))
    assert stats["b"] == {"predicted_pixels": 5, "kept": 3}              # ceil(2.5)
    assert kept_x(pseudo) == [0.8, 0.85, 0.95]
    everything, stats = self_training_features(cache, classifier, [2], percent=50, selection="top_over_split",
                                               per_class_cap=2, pool="all_images", batch_size=2,
                                               device=torch.device("cpu"))
    assert stats["b"] == {"predicted_pixels": 7, "kept": 2}              # ceil(3.5) = 4, capped at 2
    assert kept_x(everything) == [0.9, 0.95]
