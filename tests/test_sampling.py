"""Samples of real features: uniform per class (checked by counting over many draws), and at the classes'
own frequencies for the natural option."""

import h5py
import numpy as np
import pytest
import torch

from conftest import write_caches_by_hand
from zsseg.feature_cache import CacheError
from zsseg.sampling import (SeenSamples, load_seen_samples, sample_class_features, sample_pooled_features,
                            samples_params_hash, save_seen_samples)


def write_pixels(directory, rows):
    """One 1xN labelled image per row of labels; a pixel's feature is its global index, to tell pixels apart."""
    index, images = 0, []
    for number, row in enumerate(rows):
        images.append((f"image{number}", np.arange(index, index + len(row), dtype=np.float32).reshape(1, len(row), 1),
                       np.array([row], np.uint8)))
        index += len(row)
    return write_caches_by_hand(directory, images, ["background", "a", "b"], [2], "float16").labelled


def test_per_class_samples_are_uniform_over_the_class_pixels(tmp_path):
    # 20 pixels of class 1 spread over 4 images (and batches), among class 0 and ignored pixels.
    rows = [[1, 0, 1, 1, 255, 1], [0, 1, 1, 0, 1, 1, 1], [1, 1, 255, 1, 0, 1], [1, 1, 1, 0, 1, 1, 1, 1, 0]]
    cache = write_pixels(tmp_path, rows)
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
    cache = write_pixels(tmp_path, rows)
    sizes = {1: 0, 2: 0}
    for seed in range(200):
        sample = sample_pooled_features(cache, [1, 2], 20, seed, batch_size=1)
        assert sum(features.shape[0] for features in sample.values()) == 20
        for c in sizes:
            sizes[c] += sample.get(c, torch.empty(0, 1)).shape[0]
    # Class 1 holds 60 of the 80 pixels of classes 1 and 2: three quarters of every sample, on average.
    assert abs(sizes[1] / (sizes[1] + sizes[2]) - 0.75) < 0.02


def sample_params(**overrides):
    from conftest import tiny_params
    from zsseg.config import parse_params

    return parse_params(tiny_params(**overrides))


@pytest.mark.parametrize("precision", ["float16", "uint8"])
def test_samples_round_trip_and_a_balanced_classifier_sample_is_stored_once(tmp_path, precision):
    rng = torch.Generator().manual_seed(0)
    generator = {0: torch.randn(5, 8, generator=rng), 1: torch.randn(3, 8, generator=rng)}
    natural = {0: torch.randn(6, 8, generator=rng), 1: torch.randn(2, 8, generator=rng)}
    for sampling, samples in (("balanced", SeenSamples(generator, generator)),
                              ("natural", SeenSamples(generator, natural))):
        params = sample_params(**{"classifier.sampling": sampling})
        path = tmp_path / f"{sampling}.h5"
        save_seen_samples(path, samples, precision, 8, samples_params_hash(params))
        with h5py.File(path, "r") as handle:
            assert set(handle) == ({"generator"} if sampling == "balanced" else {"generator", "classifier"})
        loaded = load_seen_samples(path, params)
        for got, expected in ((loaded.generator, samples.generator), (loaded.classifier, samples.classifier)):
            assert set(got) == set(expected)
            for c in expected:
                tolerance = 1e-3 if precision == "float16" else 0.02
                torch.testing.assert_close(got[c], expected[c], atol=tolerance * 4, rtol=tolerance)
        assert (loaded.classifier is loaded.generator) == (sampling == "balanced")


def test_samples_of_other_params_or_none_are_refused(tmp_path):
    params = sample_params()
    path = tmp_path / "samples.h5"
    with pytest.raises(CacheError, match="samples not found; draw them with `dvc repro samples`"):
        load_seen_samples(path, params)
    save_seen_samples(path, SeenSamples({0: torch.zeros(1, 2)}, {0: torch.zeros(1, 2)}), "float16", 2,
                      samples_params_hash(params))
    for key, value in (("generator.real_features_per_class", 7), ("classifier.sampling", "natural"), ("seed", 3)):
        with pytest.raises(CacheError, match="drawn by other params"):
            load_seen_samples(path, sample_params(**{key: value}))
    # A value the samples do not depend on does not matter.
    load_seen_samples(path, sample_params(**{"classifier.epochs": 3}))
