"""The network's per-pixel features of a split's images: cached for the train split (the features stage), and
computed afresh for val and dev wherever they are classified (evaluate, the report, the table)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from zsseg.config import FeaturesParams
from zsseg.datasets.folder import ClassSplit, FolderDataset
from zsseg.encoder_maps import EncoderMaps
from zsseg.feature_cache import LABELLED_FILE, POOL_FILE, FeatureCacheWriter
from zsseg.labels import block_labels
from zsseg.network import SegmentationNetwork
from zsseg.runtime import mixed_precision, torch_generator


class _SplitImages(Dataset):
    """(id, image, label, unlabelled) of a split; with ``training``, the label a training stage may see.
    Without ``images`` (the encoder's maps are read instead), the image is its (H, W) size alone."""

    def __init__(self, dataset: FolderDataset, ids: list[str], training: ClassSplit | None, images: bool) -> None:
        self.dataset, self.ids, self.training, self.images = dataset, ids, training, images

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[str, np.ndarray, np.ndarray, bool]:
        if self.images:
            image, label = self.dataset.load(self.ids[index])
        else:
            label = self.dataset.load_label(self.ids[index])
            image = np.empty((*label.shape, 0), dtype=np.uint8)
        if self.training is None:
            return self.ids[index], image, label, False
        return self.ids[index], image, *self.training.training_label(label)


def _same_size_runs(items: list[tuple]) -> Iterator[list]:
    run: list = []
    for item in items:
        if run and item[1].shape != run[0][1].shape:
            yield run
            run = []
        run.append(item)
    if run:
        yield run


@torch.no_grad()
def network_features(network: SegmentationNetwork, images: list[np.ndarray], device: torch.device,
                     use_mixed_precision: bool) -> np.ndarray:
    """Per-pixel features (B, h, w, D) float32 of equal-size (H, W, 3) uint8 RGB images."""
    batch = torch.stack([torch.from_numpy(image).permute(2, 0, 1) for image in images])
    if device.type == "cuda":
        batch = batch.pin_memory()
    with mixed_precision(device, use_mixed_precision):
        low, high = network.encoder(batch.to(device, non_blocking=True).float())
    return head_features(network, low, high, device, use_mixed_precision)


@torch.no_grad()
def head_features(network: SegmentationNetwork, low: torch.Tensor, high: torch.Tensor, device: torch.device,
                  use_mixed_precision: bool) -> np.ndarray:
    """Per-pixel features (B, h, w, D) float32 from the encoder's maps: the head alone."""
    with mixed_precision(device, use_mixed_precision):
        features = network.head(low.to(device), high.to(device))
    return features.float().permute(0, 2, 3, 1).cpu().numpy()


@dataclass
class SplitBatch:
    """Consecutive images of one size: their network features and labels."""

    ids: list[str]
    features: torch.Tensor      # (B, h, w, D) float32
    labels: list[np.ndarray]    # (H, W) uint8 each; in the train split, what a training stage may see
    unlabelled: list[bool]      # train: the image holds an unseen pixel; false elsewhere


@torch.no_grad()
def split_features(network: SegmentationNetwork, dataset: FolderDataset, split: str, batch_size: int,
                   device: torch.device, use_mixed_precision: bool = True, maps: EncoderMaps | None = None,
                   training: ClassSplit | None = None, workers: int = 0, ids: Sequence[str] | None = None,
                   ) -> Iterator[SplitBatch]:
    """The network's features of the images of ``split`` (or of ``ids`` of it), each at its own size,
    ``batch_size`` images read at a time and run in groups of one size. With ``maps`` (shared by the encode
    stage), the head runs on them and the images are not read.

    With ``training`` (the train split), an image with any unseen pixel is unlabelled
    (``ClassSplit.training_label``): its label is all 255 *before* it leaves the loader, so nothing
    downstream sees any label of it, only its bit.
    """
    network = network.to(device).eval()
    ids = list(dataset.ids(split) if ids is None else ids)
    loader = DataLoader(_SplitImages(dataset, ids, training, images=maps is None), batch_size=batch_size,
                        num_workers=workers, collate_fn=list)
    for items in tqdm(loader, desc=f"network {split}", unit="batch", leave=False):
        for run in _same_size_runs(items):
            if maps is None:
                features = network_features(network, [item[1] for item in run], device, use_mixed_precision)
            else:
                features = head_features(network, *maps.read(split, [item[0] for item in run]), device,
                                         use_mixed_precision)
            yield SplitBatch([item[0] for item in run], torch.from_numpy(features), [item[2] for item in run],
                             [item[3] for item in run])


@dataclass
class ImageBatch:
    """Consecutive images of one size and their labels: what test-time augmentation classifies, running the
    network on each view of the images itself (zsseg/dense_prediction.py)."""

    ids: list[str]
    images: list[np.ndarray]    # (H, W, 3) uint8 RGB each
    labels: list[np.ndarray]    # (H, W) uint8 each


def split_images(dataset: FolderDataset, split: str, batch_size: int, workers: int = 0,
                 ids: Sequence[str] | None = None) -> Iterator[ImageBatch]:
    """The images of ``split`` (or of ``ids`` of it) and their labels, read as split_features reads them:
    ``batch_size`` at a time, in groups of one size."""
    ids = list(dataset.ids(split) if ids is None else ids)
    loader = DataLoader(_SplitImages(dataset, ids, None, images=True), batch_size=batch_size, num_workers=workers,
                        collate_fn=list)
    for items in tqdm(loader, desc=f"network {split}", unit="batch", leave=False):
        for run in _same_size_runs(items):
            yield ImageBatch([item[0] for item in run], [item[1] for item in run], [item[2] for item in run])


@torch.no_grad()
def write_training_caches(network: SegmentationNetwork, dataset: FolderDataset, class_split: ClassSplit,
                          directory: Path, params: FeaturesParams, seed: int, device: torch.device,
                          attributes: dict, workers: int = 0, use_mixed_precision: bool = True,
                          maps: EncoderMaps | None = None) -> None:
    """Run the frozen network over the train split and cache a random share of each image's feature pixels:
    the labelled images' with their labels in labelled.h5, the unlabelled images' alone in pool.h5.

    Which pixels are kept is drawn from ``seed``, one key per pixel of every image in order, whatever the
    image's bit, so the draw depends on nothing of the labels.
    """
    stride, dimension = network.stride, network.feature_dim
    attributes = {**attributes, "stride": stride, "feature_dim": dimension, "class_names": list(class_split.names),
                  "unseen": list(class_split.unseen), "label_purity": params.label_purity}
    keys = torch_generator(seed)
    with (FeatureCacheWriter(directory / LABELLED_FILE, dimension, params.precision, True,
                             {**attributes, "share": params.labelled_share}) as labelled,
          FeatureCacheWriter(directory / POOL_FILE, dimension, params.precision, False,
                             {**attributes, "share": params.pool_share}) as pool):
        for batch in split_features(network, dataset, "train", params.batch_size, device, use_mixed_precision, maps,
                                    class_split, workers):
            shape = tuple(batch.features.shape[1:3])
            for image_id, features, label, unlabelled in zip(batch.ids, batch.features, batch.labels,
                                                             batch.unlabelled):
                share = params.pool_share if unlabelled else params.labelled_share
                pixels = torch.nonzero(torch.rand(shape[0] * shape[1], generator=keys) < share).reshape(-1).numpy()
                kept = features.reshape(-1, dimension)[pixels].numpy()
                if unlabelled:
                    pool.write(image_id, kept, pixels, shape)
                else:
                    labels = block_labels(label, stride, params.label_purity, shape).reshape(-1)[pixels]
                    labelled.write(image_id, kept, pixels, shape, labels)
