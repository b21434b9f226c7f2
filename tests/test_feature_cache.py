"""The HDF5 training caches: round trip at both precisions, the uint8 error bound, the schema, and refusal of
foreign caches; and the features stage's split of the train images into labelled.h5 and pool.h5, with the
shares of pixels it keeps."""

import dataclasses
import json

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_params, write_caches_by_hand
from zsseg.config import FeaturesParams, parse_params
from zsseg.datasets.folder import FolderDataset
from zsseg.feature_cache import (LABELLED_FILE, POOL_FILE, SCHEMA_VERSION, CacheError, FeatureCache,
                                 FeatureCacheWriter, cache_params_hash, open_cache, precision_datasets)
from zsseg.feature_extraction import write_training_caches

SHAPES = [(2, 3), (2, 3), (3, 2), (2, 3), (1, 1)]


def hand_images(seed=1, dimension=4):
    """Five images of three sizes; the third and fifth are unlabelled (None)."""
    rng = np.random.default_rng(seed)
    images = []
    for index, shape in enumerate(SHAPES):
        labels = None if index in (2, 4) else rng.integers(0, 2, size=shape).astype(np.uint8)
        images.append((f"image{index}", rng.normal(size=(*shape, dimension)).astype(np.float32) * 3, labels))
    return images


@pytest.mark.parametrize("precision", ["float16", "uint8"])
def test_round_trip_streams_labelled_and_pool_images_in_batches(tmp_path, precision):
    images = hand_images()
    caches = write_caches_by_hand(tmp_path, images, ["background", "a", "b"], [2], precision)
    labelled = [image for image in images if image[2] is not None]
    pool = [image for image in images if image[2] is None]
    for cache, expected in ((caches.labelled, labelled), (caches.pool, pool)):
        assert len(cache) == len(expected) and cache.stride == 8 and cache.feature_dim == 4
        assert cache.class_names == ["background", "a", "b"] and cache.unseen == [2]
        # A batch's arrays are valid until the next batch is read: what is kept is copied.
        batches = [dataclasses.replace(batch, features=batch.features.clone()) for batch in cache.batches(2)]
        assert sum((batch.ids for batch in batches), []) == [image[0] for image in expected]
        features = torch.cat([batch.features for batch in batches]).numpy()
        stored = np.concatenate([image[1].reshape(-1, 4) for image in expected])
        if precision == "float16":
            np.testing.assert_array_equal(features, stored.astype(np.float16).astype(np.float32))
        else:
            # Each pixel's 256 levels span its own range: at most half a step off, the extremes exact.
            half_step = (stored.max(axis=1) - stored.min(axis=1)) / 510
            assert (np.abs(features - stored) <= half_step[:, None] * 1.0001).all()
            np.testing.assert_allclose(features.min(axis=1), stored.min(axis=1), rtol=1e-6)
            np.testing.assert_allclose(features.max(axis=1), stored.max(axis=1), rtol=1e-6)
        counts = torch.cat([batch.pixel_counts for batch in batches]).tolist()
        assert counts == [int(np.prod(image[1].shape[:2])) for image in expected]
        assert [int(p) for batch in batches for p in batch.pixel_images()] == \
            [i % 2 for i, n in enumerate(counts) for _ in range(n)]
    flat_labels = np.concatenate([batch.feature_labels.numpy() for batch in caches.labelled.batches(2)])
    np.testing.assert_array_equal(flat_labels, np.concatenate([image[2].reshape(-1) for image in labelled]))
    assert all(batch.feature_labels is None for batch in caches.pool.batches(2))


def test_a_batch_holds_at_most_the_pixel_limit_unless_one_image_has_more(tmp_path, monkeypatch):
    # Pixels per image: 6, 6, 6, 6, 1 (SHAPES). With a limit of 7, images 0..3 go one by one, and the last
    # image joins the fourth; with a limit of 5, each 6-pixel image still makes a batch of its own.
    caches = write_caches_by_hand(tmp_path, [(name, features, np.zeros(features.shape[:2], np.uint8))
                                             for name, features, _ in hand_images()], ["background", "a"], [])
    cache = caches.labelled
    for limit, expected in ((7, [(0, 1), (1, 2), (2, 3), (3, 5)]), (5, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]),
                            (1000, [(0, 3), (3, 5)])):
        monkeypatch.setattr("zsseg.feature_cache.BATCH_PIXEL_LIMIT", limit)
        assert cache.batch_bounds(3) == expected and cache.batch_count(3) == len(expected)
        batches = [dataclasses.replace(batch, features=batch.features.clone()) for batch in cache.batches(3)]
        assert [len(batch.ids) for batch in batches] == [stop - start for start, stop in expected]
        assert sum((batch.ids for batch in batches), []) == cache.ids
        assert all(batch.features.shape[0] <= max(limit, 6) for batch in batches)


def test_uint8_is_half_the_bytes_of_float16():
    for dimension in (4, 256):
        sizes = {name: sum(np.dtype(dtype).itemsize * int(np.prod(shape)) for dtype, shape in codec.datasets.values())
                 for name, codec in precision_datasets(dimension).items()}
        assert sizes == {"float16": 2 * dimension, "uint8": dimension + 8}


def test_schema_chunks_by_image_and_keeps_no_label_in_the_pool(tmp_path):
    write_caches_by_hand(tmp_path, hand_images(), ["background", "a", "b"], [2], "uint8")
    with h5py.File(tmp_path / LABELLED_FILE, "r") as handle:
        assert handle["codes"].dtype == np.uint8 and handle["codes"].shape == (6 + 6 + 6, 4)
        assert handle["codes"].chunks == (6, 4)            # the first image's pixel count
        assert handle["image_offsets"][:].tolist() == [0, 6, 12, 18]
        assert handle["feature_shapes"][:].tolist() == [[2, 3], [2, 3], [2, 3]]
        assert handle["pixels"][:6].tolist() == [0, 1, 2, 3, 4, 5]
        assert handle.attrs["schema_version"] == SCHEMA_VERSION and handle.attrs["part"] == "labelled"
        assert json.loads(handle.attrs["class_names"]) == ["background", "a", "b"]
    with h5py.File(tmp_path / POOL_FILE, "r") as handle:
        assert handle.attrs["part"] == "pool" and "feature_labels" not in handle
        assert handle["feature_shapes"][:].tolist() == [[3, 2], [1, 1]]


def test_the_pool_writer_refuses_labels(tmp_path):
    with pytest.raises(ValueError, match="never to pool.h5"):
        with FeatureCacheWriter(tmp_path / POOL_FILE, 2, "float16", False, {}) as writer:
            writer.write("one", np.zeros((1, 2), np.float32), np.zeros(1), (1, 1), np.zeros(1, np.uint8))


def test_cache_of_other_params_is_refused(tmp_path):
    write_caches_by_hand(tmp_path, hand_images(), ["background", "a", "b"], [2], params_hash="old")
    with pytest.raises(CacheError, match="made by other params .* rebuild it with `dvc repro features`"):
        FeatureCache(tmp_path / LABELLED_FILE, expected_params_hash="new")


def test_a_cell_of_another_seed_reads_the_cache_its_k_shares(tmp_path):
    """table.backbone_per_seed: false: the cell of seed 1 reads the cache that seed 0's cell made; a change
    to what makes a cache is still refused."""
    made = parse_params(tiny_params(seed=0))
    write_caches_by_hand(tmp_path, hand_images(), ["background", "a", "b"], [2], params_hash=cache_params_hash(made))
    open_cache(tmp_path / LABELLED_FILE, parse_params(tiny_params(seed=1)))
    for key, value in (("features.labelled_share", 0.5), ("dataset.unseen", 2), ("backbone.epochs", 3)):
        with pytest.raises(CacheError, match="made by other params"):
            open_cache(tmp_path / LABELLED_FILE, parse_params(tiny_params(**{"seed": 1, key: value})))


def test_missing_cache(tmp_path):
    with pytest.raises(CacheError, match="feature cache not found"):
        FeatureCache(tmp_path / POOL_FILE)


def test_nan_features_are_refused(tmp_path):
    with pytest.raises(FloatingPointError, match="'bad'"):
        with FeatureCacheWriter(tmp_path / LABELLED_FILE, 2, "float16", True, {}) as writer:
            writer.write("bad", np.array([[np.nan, 0.0]], np.float32), np.zeros(1), (1, 1), np.zeros(1, np.uint8))


class MapNetwork(torch.nn.Module):
    """A stand-in for the network: an image's features are its pixels' colours at stride 1, plus a channel
    that is each pixel's index, so every cached row tells which pixel it came from."""

    stride, feature_dim = 1, 4

    def encoder(self, images):
        return images, images

    def head(self, low, high):
        index = torch.arange(low.shape[2] * low.shape[3], dtype=torch.float32).reshape(1, 1, *low.shape[2:])
        return torch.cat([low, index.expand(low.shape[0], 1, *low.shape[2:])], dim=1)


@pytest.mark.parametrize("labelled_share, pool_share", [(1.0, 1.0), (0.25, 0.5)])
def test_the_features_stage_keeps_a_share_of_each_image_in_its_part(tmp_path, small_dataset, labelled_share,
                                                                     pool_share):
    # train0 holds a dog (class 2, unseen): unlabelled. train1 loses its dog: labelled.
    label_path = small_dataset / "labels" / "train1.png"
    label = np.array(Image.open(label_path))
    label[label == 2] = 0
    Image.fromarray(label, mode="L").save(label_path)
    dataset = FolderDataset(small_dataset)
    class_split = dataset.class_split(["dog"])
    params = FeaturesParams(batch_size=2, label_purity=0.5, precision="float16", labelled_share=labelled_share,
                            pool_share=pool_share)
    write_training_caches(MapNetwork(), dataset, class_split, tmp_path, params, 7, torch.device("cpu"),
                          {"params_hash": "abc"})
    labelled, pool = FeatureCache(tmp_path / LABELLED_FILE), FeatureCache(tmp_path / POOL_FILE)
    assert (labelled.ids, pool.ids) == (["train1"], ["train0"])
    for cache, share in ((labelled, labelled_share), (pool, pool_share)):
        batch = next(cache.batches(2))
        # The stored index channel is each row's pixel: the rows are the pixels the cache says they are.
        np.testing.assert_array_equal(batch.features[:, 3].numpy(), batch.pixels.numpy())
        assert cache.pixel_count == pytest.approx(32 * 32 * share, rel=0.25 if share < 1 else 0)
        assert cache.attrs["share"] == share
    batch = next(labelled.batches(2))
    np.testing.assert_array_equal(batch.feature_labels.numpy(), label.reshape(-1)[batch.pixels.numpy()])
