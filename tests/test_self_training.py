"""ZS5Net's top-p % pseudo-label selection, checked on hand-made examples."""

import numpy as np
import torch
from torch import nn

from zsseg.feature_cache import FeatureCache, FeatureCacheWriter
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


def test_selection_spans_the_whole_split_and_uses_only_unlabelled_pixels(tmp_path):
    # Two images of 1x3 feature pixels with 2-d features; a classifier that scores class 2 by x.
    features = [np.array([[[0.9, 0], [0.2, 0], [0.5, 0]]]), np.array([[[0.8, 0], [0.95, 0], [0.1, 0]]])]
    feature_labels = [np.array([[255, 255, 1]], np.uint8), np.array([[255, 255, 255]], np.uint8)]
    attributes = {"stride": 8, "feature_dim": 2, "class_names": ["background", "a", "b"], "unseen": [2]}
    with FeatureCacheWriter(tmp_path / "train.h5", 2, 2, attributes) as writer:
        for index in range(2):
            writer.write(f"image{index}", features[index], feature_labels[index], np.zeros((8, 24), np.uint8))
    classifier = nn.Linear(2, 3)
    with torch.no_grad():
        classifier.weight.copy_(torch.tensor([[0.0, 0.0], [0.0, 0.0], [20.0, 0.0]]))
        classifier.bias.copy_(torch.tensor([0.0, 0.0, -8.0]))   # class 2 wins where x > 0.4
    pseudo, stats = self_training_features(FeatureCache(tmp_path / "train.h5"), classifier, [2], percent=50,
                                           per_class_cap=10, batch_size=1, device=torch.device("cpu"))
    # Unlabelled pixels predicted as class 2: x = 0.9, 0.8, 0.95 (0.5 is labelled "a"); 50 % of 3 -> 2.
    assert stats["b"] == {"predicted_pixels": 3, "kept": 2}
    # The top two are 0.95 and 0.9 (stored as float16), from different images.
    assert sorted(pseudo[2][:, 0].tolist()) == [np.float16(0.9).item(), np.float16(0.95).item()]
