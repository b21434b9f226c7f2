"""Samples of real features: uniform per class (checked by counting over many draws), and at the classes'
own frequencies for the natural option."""

import numpy as np
import torch

from zsseg.feature_cache import FeatureCache, FeatureCacheWriter
from zsseg.sampling import sample_class_features, sample_pooled_features


def write_pixels(path, rows):
    """One 1xN image per row of labels; a pixel's feature is its global index, to tell pixels apart."""
    attributes = {"stride": 8, "feature_dim": 1, "class_names": ["background", "a", "b"], "unseen": [2]}
    index = 0
    with FeatureCacheWriter(path, len(rows), 1, attributes) as writer:
        for number, row in enumerate(rows):
            features = np.arange(index, index + len(row), dtype=np.float32).reshape(1, len(row), 1)
            index += len(row)
            writer.write(f"image{number}", features, np.array([row], np.uint8), np.zeros((8, 8 * len(row)), np.uint8))
    return FeatureCache(path)


def test_per_class_samples_are_uniform_over_the_class_pixels(tmp_path):
    # 20 pixels of class 1 spread over 4 images (and batches), among class 0 and ignored pixels.
    rows = [[1, 0, 1, 1, 255, 1], [0, 1, 1, 0, 1, 1, 1], [1, 1, 255, 1, 0, 1], [1, 1, 1, 0, 1, 1, 1, 1, 0]]
    cache = write_pixels(tmp_path / "train.h5", rows)
    flat = [label for row in rows for label in row]
    class_pixels = [i for i, label in enumerate(flat) if label == 1]
    assert len(class_pixels) == 20
    draws, per_class = 600, 5
    counts = dict.fromkeys(class_pixels, 0)
    for seed in range(draws):
        sample = sample_class_features(cache, [1], per_class, seed, batch_size=2)[1]
        assert sample.shape[0] == per_class and len(set(sample[:, 0].tolist())) == per_class
        for value in sample[:, 0].tolist():
            counts[int(value)] += 1
    # Each pixel is drawn with probability 5/20: 150 expected of 600, standard deviation 10.6.
    assert all(100 < count < 200 for count in counts.values()), counts


def test_natural_samples_keep_the_class_frequencies(tmp_path):
    rows = [[1] * 30 + [2] * 10, [1] * 30 + [2] * 10 + [0] * 20]
    cache = write_pixels(tmp_path / "train.h5", rows)
    sizes = {1: 0, 2: 0}
    for seed in range(200):
        sample = sample_pooled_features(cache, [1, 2], 20, seed, batch_size=1)
        assert sum(features.shape[0] for features in sample.values()) == 20
        for c in sizes:
            sizes[c] += sample.get(c, torch.empty(0, 1)).shape[0]
    # Class 1 holds 60 of the 80 pixels of classes 1 and 2: three quarters of every sample, on average.
    assert abs(sizes[1] / (sizes[1] + sizes[2]) - 0.75) < 0.02
