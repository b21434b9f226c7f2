"""HDF5 feature cache: round trip, schema and refusal of foreign caches."""

import json

import h5py
import numpy as np
import pytest

from zsseg.feature_cache import SCHEMA_VERSION, CacheError, FeatureCache, FeatureCacheWriter, block_labels


def write_cache(path, count=5, params_hash="abc"):
    rng = np.random.default_rng(1)
    features = rng.normal(size=(count, 2, 3, 4)).astype(np.float32)
    labels = rng.integers(0, 3, size=(count, 16, 24)).astype(np.uint8)
    feature_labels = np.stack([block_labels(label, 8, 0.5) for label in labels])
    attributes = {"params_hash": params_hash, "split": "train", "stride": 8, "feature_dim": 4,
                  "class_names": ["background", "a", "b"], "unseen": [2], "label_purity": 0.5}
    with FeatureCacheWriter(path, count, (2, 3, 4), (16, 24), attributes) as writer:
        for index in range(count):
            writer.write(index, f"image{index}", features[index], feature_labels[index], labels[index])
    return features, feature_labels, labels


def test_round_trip_streams_in_batches(tmp_path):
    path = tmp_path / "train.h5"
    features, feature_labels, labels = write_cache(path)
    cache = FeatureCache(path, expected_params_hash="abc")
    assert len(cache) == 5 and cache.stride == 8 and cache.feature_dim == 4
    assert cache.class_names == ["background", "a", "b"] and cache.unseen == [2]
    batches = list(cache.batches(2))
    assert [len(batch.ids) for batch in batches] == [2, 2, 1]
    assert sum((batch.ids for batch in batches), []) == [f"image{i}" for i in range(5)]
    read = np.concatenate([batch.features.numpy() for batch in batches])
    np.testing.assert_allclose(read, features.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(np.concatenate([b.feature_labels.numpy() for b in batches]), feature_labels)
    np.testing.assert_array_equal(np.concatenate([b.labels.numpy() for b in batches]), labels)


def test_schema_is_float16_chunked_per_image(tmp_path):
    path = tmp_path / "train.h5"
    write_cache(path)
    with h5py.File(path, "r") as handle:
        assert handle["features"].dtype == np.float16
        assert handle["features"].shape == (5, 2, 3, 4)
        assert handle["features"].chunks == (1, 2, 3, 4)
        assert handle["labels"].chunks == (1, 16, 24)
        assert handle["feature_labels"].dtype == np.uint8
        assert handle.attrs["schema_version"] == SCHEMA_VERSION
        assert json.loads(handle.attrs["class_names"]) == ["background", "a", "b"]


def test_cache_of_other_params_is_refused(tmp_path):
    path = tmp_path / "train.h5"
    write_cache(path, params_hash="old")
    with pytest.raises(CacheError, match="made by other params .* rebuild it with `dvc repro features`"):
        FeatureCache(path, expected_params_hash="new")


def test_missing_cache(tmp_path):
    with pytest.raises(CacheError, match="feature cache not found"):
        FeatureCache(tmp_path / "val.h5")


def test_nan_features_are_refused(tmp_path):
    with FeatureCacheWriter(tmp_path / "x.h5", 1, (1, 1, 2), (8, 8), {}) as writer:
        with pytest.raises(FloatingPointError, match="'bad'"):
            writer.write(0, "bad", np.array([[[np.nan, 0.0]]]), np.zeros((1, 1), np.uint8),
                         np.zeros((8, 8), np.uint8))


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
    assert block_labels(label, 8, 0.5)[0, 1] in (4, 5)
