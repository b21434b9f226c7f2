"""Caching the frozen network's per-pixel features and labels of a split to HDF5 (the features stage)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from zsseg.datasets.folder import ClassSplit, FolderDataset
from zsseg.encoder_maps import EncoderMaps
from zsseg.feature_cache import FeatureCacheWriter
from zsseg.labels import block_labels
from zsseg.network import SegmentationNetwork
from zsseg.runtime import mixed_precision


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


@torch.no_grad()
def write_feature_cache(network: SegmentationNetwork, dataset: FolderDataset, split: str, class_split: ClassSplit,
                        path: str | Path, label_purity: float, batch_size: int, device: torch.device,
                        attributes: dict, workers: int = 0, use_mixed_precision: bool = True,
                        maps: EncoderMaps | None = None) -> None:
    """Run the frozen network over a split, every image at its own size, and cache features and labels.

    In the train split an image with any unseen pixel is unlabelled (``ClassSplit.training_label``):
    its labels become 255 *before* anything is written, so no later stage sees any label of it, only
    its bit. Images of equal size share a batch. With ``maps`` (shared by the encode stage), the head runs
    on them and the images are not read.
    """
    network = network.to(device).eval()
    ids = dataset.ids(split)
    training = split == "train"
    attributes = {**attributes, "split": split, "stride": network.stride, "feature_dim": network.feature_dim,
                  "class_names": list(class_split.names), "unseen": list(class_split.unseen),
                  "label_purity": label_purity, "labels": "labelled images only" if training else "all"}
    loader = DataLoader(_SplitImages(dataset, ids, class_split if training else None, images=maps is None),
                        batch_size=batch_size, num_workers=workers, collate_fn=list)
    with FeatureCacheWriter(path, len(ids), network.feature_dim, attributes) as writer:
        for items in tqdm(loader, desc=f"features {split}", unit="batch"):
            for run in _same_size_runs(items):
                if maps is None:
                    features = network_features(network, [item[1] for item in run], device, use_mixed_precision)
                else:
                    features = head_features(network, *maps.read(split, [item[0] for item in run]), device,
                                             use_mixed_precision)
                # To the cache's float16 for the whole batch: torch converts 4x faster than numpy, same bits.
                features = torch.from_numpy(features).half().numpy()
                for (image_id, _, label, unlabelled), image_features in zip(run, features):
                    shape = image_features.shape[:2]
                    writer.write(image_id, image_features, block_labels(label, network.stride, label_purity, shape),
                                 label, unlabelled)
