"""Caching the frozen network's per-pixel features and labels of a split to HDF5 (the features stage)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from zsseg.datasets.folder import ClassSplit, FolderDataset
from zsseg.feature_cache import FeatureCacheWriter, block_labels
from zsseg.network import SegmentationNetwork
from zsseg.runtime import mixed_precision


class _SplitImages(Dataset):
    def __init__(self, dataset: FolderDataset, ids: list[str], label_map: np.ndarray | None) -> None:
        self.dataset, self.ids, self.label_map = dataset, ids, label_map

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[str, np.ndarray, np.ndarray]:
        image, label = self.dataset.load(self.ids[index])
        return self.ids[index], image, label if self.label_map is None else self.label_map[label]


def _same_size_runs(items: list[tuple[str, np.ndarray, np.ndarray]]) -> Iterator[list]:
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
        features = network.features(batch.to(device, non_blocking=True).float())
    return features.float().permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def write_feature_cache(network: SegmentationNetwork, dataset: FolderDataset, split: str, class_split: ClassSplit,
                        path: str | Path, label_purity: float, batch_size: int, device: torch.device,
                        attributes: dict, workers: int = 0, use_mixed_precision: bool = True) -> None:
    """Run the frozen network over a split, every image at its own size, and cache features and labels.

    In the train split every unseen label becomes 255 *before* anything is written, so no later
    stage can learn which unseen class a pixel belongs to. Images of equal size share a batch.
    """
    network = network.to(device).eval()
    ids = dataset.ids(split)
    hide_unseen = split == "train"
    attributes = {**attributes, "split": split, "stride": network.stride, "feature_dim": network.feature_dim,
                  "class_names": list(class_split.names), "unseen": list(class_split.unseen),
                  "label_purity": label_purity, "unseen_labels": "ignored" if hide_unseen else "kept"}
    loader = DataLoader(_SplitImages(dataset, ids, class_split.unseen_to_ignore_map() if hide_unseen else None),
                        batch_size=batch_size, num_workers=workers, collate_fn=list)
    with FeatureCacheWriter(path, len(ids), network.feature_dim, attributes) as writer:
        for items in tqdm(loader, desc=f"features {split}", unit="batch"):
            for run in _same_size_runs(items):
                features = network_features(network, [image for _, image, _ in run], device, use_mixed_precision)
                for (image_id, _, label), image_features in zip(run, features):
                    shape = image_features.shape[:2]
                    writer.write(image_id, image_features, block_labels(label, network.stride, label_purity, shape),
                                 label)
