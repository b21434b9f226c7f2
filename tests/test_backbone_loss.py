"""``backbone.loss_label_stride``: the head's loss sees the majority label of each stride x stride block of the
labels, in both training paths (random crops through the loader, whole images on a frozen encoder)."""

from collections import Counter

import pytest
import torch

from conftest import PROJECT_ROOT
from zsseg.backbone_training import SeenTrainingImages, _frozen_encoder_batches
from zsseg.config import ParamsError, load_params
from zsseg.datasets.folder import FolderDataset
from zsseg.network import SegmentationNetwork


def majority_by_hand(label: torch.Tensor, stride: int) -> torch.Tensor:
    """Each block's most frequent value, the smaller one on a tie, counted pixel by pixel."""
    rows, columns = label.shape[0] // stride, label.shape[1] // stride
    out = torch.empty(rows, columns, dtype=label.dtype)
    for row in range(rows):
        for column in range(columns):
            counts = Counter(label[row * stride:(row + 1) * stride, column * stride:(column + 1) * stride]
                             .reshape(-1).tolist())
            most = max(counts.values())
            out[row, column] = min(value for value, count in counts.items() if count == most)
    return out


def _images(small_dataset, crop_size, stride):
    dataset = FolderDataset(small_dataset)
    return SeenTrainingImages(dataset, dataset.ids("train"), dataset.class_split(1), crop_size, [0.5, 2.0], stride,
                              seed=3)


def test_random_crops_come_with_the_majority_label_of_each_block(small_dataset):
    full, half = _images(small_dataset, 16, 1), _images(small_dataset, 16, 2)
    for epoch in range(3):
        full.epoch = half.epoch = epoch
        for index in range(len(full)):
            (image, label), (half_image, half_label) = full[index], half[index]
            assert torch.equal(image, half_image) and label.shape == (16, 16)
            assert half_label.shape == (8, 8) and half_label.dtype == torch.int64
            assert torch.equal(half_label, majority_by_hand(label, 2))


def test_whole_images_on_a_frozen_encoder_come_with_the_majority_labels_flipped_with_the_maps(small_dataset):
    params = load_params(PROJECT_ROOT / "params.yaml").backbone
    torch.manual_seed(0)
    network = SegmentationNetwork(params.arch, 2, 16, params.aspp_rates, params.weights).eval()
    images = {stride: _images(small_dataset, None, stride) for stride in (1, 2)}
    batches = {stride: _frozen_encoder_batches(network, images[stride], 1, torch.Generator().manual_seed(5),
                                               torch.device("cpu"), None) for stride in (1, 2)}
    originals = [torch.from_numpy(images[1].to_seen[images[1].dataset.load_label(image_id)]).long()
                 for image_id in images[1].ids]
    flipped = 0
    for _ in range(4):
        for ((low, _), label), ((half_low, _), half_label) in zip(batches[1](), batches[2]()):
            assert torch.equal(low, half_low)
            assert torch.equal(half_label, majority_by_hand(label[0], 2).unsqueeze(0))
            assert any(torch.equal(label[0], original) or torch.equal(label[0], original.flip(-1))
                       for original in originals)
            flipped += not any(torch.equal(label[0], original) for original in originals)
    # Some batches were flipped: the check covered labels reduced first and flipped after.
    assert flipped > 0


def test_a_stride_below_one_is_refused(tmp_path):
    text = (PROJECT_ROOT / "params.yaml").read_text().replace("loss_label_stride: 2", "loss_label_stride: 0")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError, match="backbone.loss_label_stride = 0: expected an integer >= 1"):
        load_params(tmp_path / "params.yaml")
