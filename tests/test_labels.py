"""The majority label of each block, as the feature cache, the ceiling's labels and the backbone's loss use it."""

import numpy as np
import pytest

from conftest import majority_by_hand
from zsseg.labels import block_labels


def test_block_labels_majority_and_purity():
    label = np.zeros((16, 16), dtype=np.uint8)
    label[:8, :8] = 3                 # pure block
    label[8:, :8] = 1
    label[8:12, :2] = 2               # 8 of 64 pixels differ: 87.5 % majority
    label[:8, 8:] = 4
    label[:4, 8:] = 5                 # 50 / 50 split
    label[8:, 8:] = 255
    assert block_labels(label, 8, 0.75).tolist() == [[3, 255], [1, 255]]
    assert block_labels(label, 8, 0.9).tolist() == [[3, 255], [255, 255]]
    assert block_labels(label, 8, 0.5)[0, 1] == 4   # a tie goes to the smaller label


@pytest.mark.parametrize("stride, purity", [(2, 0.0), (4, 0.5), (8, 0.75)])
def test_block_labels_match_a_count_per_block(stride, purity):
    rng = np.random.default_rng(stride)
    label = rng.choice(np.array([0, 1, 7, 255], dtype=np.uint8), size=(4 * stride, 3 * stride), p=[.4, .3, .2, .1])
    assert (block_labels(label, stride, purity) == majority_by_hand(label, stride, purity)).all()


def test_block_labels_pad_a_partial_border_block_with_ignore():
    label = np.full((12, 8), 2, dtype=np.uint8)     # 12 rows: the second row of 8x8 blocks is half empty
    assert block_labels(label, 8, 0.75, (2, 1)).tolist() == [[2], [255]]
    # At 50 % the tie between class 2 and the padding goes to the lower value, the class.
    assert block_labels(label, 8, 0.5, (2, 1)).tolist() == [[2], [2]]
