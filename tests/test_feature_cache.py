"""HDF5 feature cache: round trip, schema and refusal of foreign caches."""

import json

import h5py
import numpy as np
import pytest
import torch

from zsseg.feature_cache import SCHEMA_VERSION, CacheError, FeatureCache, FeatureCacheWriter
from zsseg.labels import block_labels


SHAPES = [((2, 3), (16, 24)), ((2, 3), (16, 24)), ((3, 2), (21, 13)), ((2, 3), (16, 24)), ((1, 1), (8, 8))]


def write_cache(path, params_hash="abc"):
    """Five images of three different sizes, as VOC's val split has. Class 2 is unseen: the first two images
    have none of it (labelled), the others do, so they are written as a training split writes them:
    unlabelled, every label 255."""
    rng = np.random.default_rng(1)
    items = []
    for index, (feature_shape, label_shape) in enumerate(SHAPES):
        features = rng.normal(size=(*feature_shape, 4)).astype(np.float32)
        labels = rng.integers(0, 2 if index < 2 else 3, size=label_shape).astype(np.uint8)
        unlabelled = bool((labels == 2).any())
        if unlabelled:
            labels = np.full_like(labels, 255)
        items.append((f"image{index}", features, block_labels(labels, 8, 0.5, feature_shape), labels, unlabelled))
    attributes = {"params_hash": params_hash, "split": "train", "stride": 8, "feature_dim": 4,
                  "class_names": ["background", "a", "b"], "unseen": [2], "label_purity": 0.5}
    with FeatureCacheWriter(path, len(items), 4, attributes) as writer:
        for item in items:
            writer.write(*item)
    return items


def test_round_trip_streams_in_batches(tmp_path):
    path = tmp_path / "train.h5"
    items = write_cache(path)
    cache = FeatureCache(path, expected_params_hash="abc")
    assert len(cache) == 5 and cache.stride == 8 and cache.feature_dim == 4
    assert cache.class_names == ["background", "a", "b"] and cache.unseen == [2]
    batches = list(cache.batches(2))
    assert [len(batch.ids) for batch in batches] == [2, 2, 1]
    assert sum((batch.ids for batch in batches), []) == [item[0] for item in items]
    read = [features for batch in batches for features in batch.image_features()]
    labels = [label for batch in batches for label in batch.labels]
    assert [item[4] for item in items] == [False, False, True, True, True]
    assert torch.cat([batch.unlabelled for batch in batches]).tolist() == [item[4] for item in items]
    for (image_id, features, feature_labels, label, _), got, got_label in zip(items, read, labels):
        np.testing.assert_allclose(got.numpy(), features.astype(np.float16).astype(np.float32))
        np.testing.assert_array_equal(got_label.numpy(), label)
    flat_labels = np.concatenate([batch.feature_labels.numpy() for batch in batches])
    np.testing.assert_array_equal(flat_labels, np.concatenate([item[2].reshape(-1) for item in items]))


def test_schema_is_float16_and_chunked_by_image(tmp_path):
    path = tmp_path / "train.h5"
    write_cache(path)
    with h5py.File(path, "r") as handle:
        assert handle["features"].dtype == np.float16
        assert handle["features"].shape == (6 + 6 + 6 + 6 + 1, 4)
        assert handle["features"].chunks == (6, 4)         # the first image's pixel count
        assert handle["feature_offsets"][:].tolist() == [0, 6, 12, 18, 24, 25]
        assert handle["label_shapes"][2].tolist() == [21, 13]
        assert handle["feature_labels"].dtype == np.uint8
        assert handle.attrs["schema_version"] == SCHEMA_VERSION
        assert json.loads(handle.attrs["class_names"]) == ["background", "a", "b"]


def test_an_unfinished_cache_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="1 images written, 2 announced"):
        with FeatureCacheWriter(tmp_path / "x.h5", 2, 2, {}) as writer:
            writer.write("one", np.zeros((1, 1, 2)), np.zeros((1, 1), np.uint8), np.zeros((8, 8), np.uint8))


def test_cache_of_other_params_is_refused(tmp_path):
    path = tmp_path / "train.h5"
    write_cache(path, params_hash="old")
    with pytest.raises(CacheError, match="made by other params .* rebuild it with `dvc repro features`"):
        FeatureCache(path, expected_params_hash="new")


def test_missing_cache(tmp_path):
    with pytest.raises(CacheError, match="feature cache not found"):
        FeatureCache(tmp_path / "val.h5")


def test_nan_features_are_refused(tmp_path):
    with pytest.raises(FloatingPointError, match="'bad'"):
        with FeatureCacheWriter(tmp_path / "x.h5", 1, 2, {}) as writer:
            writer.write("bad", np.array([[[np.nan, 0.0]]]), np.zeros((1, 1), np.uint8),
                         np.zeros((8, 8), np.uint8))
