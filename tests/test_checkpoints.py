"""No code from a shared run: every model file a user can point the project at is read weights-only. A crafted
file whose unpickling would create a marker file is refused with a message naming it, and the marker never
appears; the same file loaded as torch.load loads by default shows that the trap is real (the control)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from zsseg.checkpoints import CheckpointError
from zsseg.classifier import CLASSIFIER_FILE, load_classifier
from zsseg.generator import GENERATOR_FILE, load_generator
from zsseg.network import (NETWORK_FILE, ResNet101Encoder, SegmentationNetwork, imagenet_weights_warning,
                           load_network, load_zs3net_checkpoint)
from zsseg.predict import find_run


class Trap:
    """Unpickled, it creates the file ``marker``: what a crafted checkpoint could do with any code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def crafted(path: Path, marker: Path) -> Path:
    """A torch file with a plausible layout and the trap inside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": {}, "state_dict": {"weight": torch.zeros(2, 2)}, "weight": torch.zeros(2, 2),
                "bias": torch.zeros(2), "class_names": ["a", "b"], "unseen": [1], "extra": Trap(marker)}, path)
    return path


def test_the_crafted_file_runs_its_code_when_fully_unpickled(tmp_path):
    marker = tmp_path / "marker"
    torch.load(crafted(tmp_path / "file.pt", marker), weights_only=False)
    assert marker.exists()


def zs3net_checkpoint(path: Path) -> None:
    network = SegmentationNetwork("deeplabv3plus_resnet101", 3, 16, [6, 12, 18])
    load_zs3net_checkpoint(network, path, [0, 1, 2], 4)


def predict_run(path: Path) -> None:
    """`zsseg predict --run` on a colleague's round whose classifier is the crafted file."""
    root = path.parents[2]
    for required in (root / "backbone" / NETWORK_FILE, root / "features" / "labelled.h5",
                     root / "rounds" / "1" / GENERATOR_FILE):
        required.parent.mkdir(parents=True, exist_ok=True)
        required.touch()
    np.savez(root / "embeddings.npz", vectors=np.zeros((2, 3)))
    find_run(str(path.parent))


LOADERS = {
    "backbone": (NETWORK_FILE, lambda path: load_network(path, torch.device("cpu"))),
    "classifier": (CLASSIFIER_FILE, lambda path: load_classifier(path.parent)),
    "generator": (GENERATOR_FILE, lambda path: load_generator(path.parent, torch.zeros(2, 3))),
    "ZS3Net checkpoint": ("zs3net.pth.tar", zs3net_checkpoint),
    "ImageNet weights: the stage's check": ("resnet101.pth", imagenet_weights_warning),
    "ImageNet weights: the encoder": ("resnet101.pth", ResNet101Encoder),
    "zsseg predict --run": (CLASSIFIER_FILE, predict_run),
}


@pytest.mark.parametrize("loader", LOADERS)
def test_every_loader_refuses_a_crafted_file_before_running_it(tmp_path, loader):
    name, load = LOADERS[loader]
    marker = tmp_path / "marker"
    path = crafted(tmp_path / "data" / "rounds" / "1" / name, marker)
    with pytest.raises(CheckpointError, match="refused") as refused:
        load(path)
    assert str(path) in str(refused.value)
    assert not marker.exists()
