"""The encode stage's shared maps stand in for the encoder: a head trained and run on them gives what the
encoder run inside the backbone and features stages gives."""

import numpy as np
import pytest
import torch

from conftest import PROJECT_ROOT
from zsseg.backbone_training import train_segmentation_network
from zsseg.config import ParamsError, load_params
from zsseg.datasets.folder import FolderDataset
from zsseg.encoder_maps import shared_maps, write_encoder_maps
from zsseg.feature_extraction import split_features
from zsseg.network import SegmentationNetwork

CPU = torch.device("cpu")


@pytest.fixture
def backbone():
    params = load_params(PROJECT_ROOT / "params.yaml")
    return params.backbone.__class__(**{**params.backbone.__dict__, "epochs": 2, "batch_size": 2,
                                        "feature_dim": 32})


def _network(backbone, seen):
    torch.manual_seed(0)
    return SegmentationNetwork(backbone.arch, seen, backbone.feature_dim, backbone.aspp_rates, backbone.weights)


def test_a_head_on_shared_maps_trains_and_extracts_as_on_the_images(small_dataset, tmp_path, backbone):
    dataset = FolderDataset(small_dataset)
    split = dataset.class_split(1)
    write_encoder_maps(backbone, dataset, tmp_path / "maps.h5", 1, CPU)
    maps = shared_maps(tmp_path / "maps.h5", backbone)
    encoder = _network(backbone, len(split.seen)).encoder.eval()
    for name in ("train", "val"):
        ids = dataset.ids(name)
        images = torch.stack([torch.from_numpy(dataset.load_image(image_id)).permute(2, 0, 1) for image_id in ids])
        with torch.no_grad():
            expected = encoder(images.float())
        # Read in another order than written: each image gets its own maps back.
        for got, want in zip(maps.read(name, ids[::-1]), expected):
            assert torch.allclose(got, want.flip(0), rtol=1e-4, atol=1e-4)
    histories = {}
    for name, source in (("images", None), ("maps", maps)):
        network = _network(backbone, len(split.seen))
        histories[name] = train_segmentation_network(network, dataset, dataset.ids("train"), split, backbone, 0,
                                                     CPU, source)
        # The same trained network extracts the same features from either.
        from_images = list(split_features(network, dataset, "val", 2, CPU))
        from_maps = list(split_features(network, dataset, "val", 2, CPU, maps=maps))
        assert len(from_images) == len(from_maps) == 1
        for one, other in zip(from_images, from_maps):
            assert one.ids == other.ids
            assert torch.allclose(one.features, other.features, atol=2e-3)
            assert all(np.array_equal(a, b) for a, b in zip(one.labels, other.labels))
    # The first epoch's loss comes before any update: it sees the same maps either way.
    assert histories["maps"][0]["loss"] == pytest.approx(histories["images"][0]["loss"], rel=1e-5)


def test_maps_written_without_sharing_are_none_and_other_params_are_refused(small_dataset, tmp_path, backbone):
    dataset = FolderDataset(small_dataset)
    unshared = backbone.__class__(**{**backbone.__dict__, "share_encoder_maps": False})
    write_encoder_maps(unshared, dataset, tmp_path / "none.h5", 2, CPU)
    assert shared_maps(tmp_path / "none.h5", unshared) is None
    with pytest.raises(ParamsError, match="rerun the encode stage"):
        shared_maps(tmp_path / "none.h5", backbone)
