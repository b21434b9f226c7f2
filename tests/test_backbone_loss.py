"""``backbone.loss_label_stride``: the head's loss sees the majority label of each stride x stride block of the
labels, in both training paths (random crops through the loader, whole images on a frozen encoder)."""

import pytest
import torch

from conftest import PROJECT_ROOT, majority_by_hand
from zsseg.backbone_training import SeenTrainingImages, _frozen_encoder_batches
from zsseg.config import ParamsError, load_params
from zsseg.datasets.folder import FolderDataset
from zsseg.network import SegmentationNetwork


def _images(small_dataset, crop_size, stride):
    dataset = FolderDataset(small_dataset)
    return SeenTrainingImages(dataset, dataset.ids("train"), dataset.class_split(1), crop_size, [0.5, 2.0], stride,
                              seed=3)


def test_random_crops_come_with_the_majority_label_of_each_block(small_dataset):
    full, half = _images(small_dataset, 16, 1), _images(small_dataset, 16, 2)
    for epoch in range(3):
        for index in range(len(full)):
            (image, label), (half_image, half_label) = full[epoch, index], half[epoch, index]
            assert torch.equal(image, half_image) and label.shape == (16, 16)
            assert half_label.shape == (8, 8) and half_label.dtype == torch.int64
            assert torch.equal(half_label, torch.from_numpy(majority_by_hand(label.numpy(), 2)))


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
        for ((low, _), label), ((half_low, _), half_label) in zip(batches[1](0, 0), batches[2](0, 0)):
            assert torch.equal(low, half_low)
            assert torch.equal(half_label, torch.from_numpy(majority_by_hand(label[0].numpy(), 2)).unsqueeze(0))
            assert any(torch.equal(label[0], original) or torch.equal(label[0], original.flip(-1))
                       for original in originals)
            flipped += not any(torch.equal(label[0], original) for original in originals)
    # Some batches were flipped: the check covered labels reduced first and flipped after.
    assert flipped > 0


def test_a_stride_below_one_is_refused(tmp_path):
    text = (PROJECT_ROOT / "params.yaml").read_text().replace("loss_label_stride: 1", "loss_label_stride: 0")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError, match="backbone.loss_label_stride = 0: expected an integer >= 1"):
        load_params(tmp_path / "params.yaml")
