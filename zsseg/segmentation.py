"""Training the segmentation network on seen classes, and caching its features to HDF5."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from zsseg.config import BackboneParams
from zsseg.datasets import ClassSplit, FolderDataset
from zsseg.feature_cache import FeatureCacheWriter, block_labels
from zsseg.metrics import IGNORE_INDEX
from zsseg.network import FEATURE_STRIDE, SegmentationNetwork
from zsseg.runtime import torch_generator


def seen_training_set(dataset: FolderDataset, class_split: ClassSplit,
                      log: Callable[[str], None]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Training images without any unseen pixel (the ZS3Net protocol), labels in seen-classifier indices.

    Returns uint8 images (N, 3, H, W), uint8 labels (N, H, W) and the kept ids.
    """
    unseen = np.asarray(class_split.unseen)
    to_seen = class_split.seen_label_map()
    images, labels, kept = [], [], []
    ids = dataset.ids("train")
    for image_id in tqdm(ids, desc="load train", unit="img", leave=False):
        image, label = dataset.load(image_id)
        if np.isin(label, unseen).any():
            continue
        images.append(torch.from_numpy(image).permute(2, 0, 1))
        labels.append(torch.from_numpy(to_seen[label]))
        kept.append(image_id)
    log(f"kept {len(kept)} of {len(ids)} training images; dropped {len(ids) - len(kept)} with unseen pixels")
    if not kept:
        raise ValueError("every training image contains an unseen class: nothing is left to train on")
    pixel_counts = np.bincount(torch.stack(labels).reshape(-1).numpy(), minlength=256)
    for position, index in enumerate(class_split.seen):
        if pixel_counts[position] == 0:
            log(f"warning: seen class {class_split.names[index]!r} has no pixel in the kept training images")
    return torch.stack(images), torch.stack(labels), kept


def train_segmentation_network(network: SegmentationNetwork, images: torch.Tensor, labels: torch.Tensor,
                               params: BackboneParams, seed: int, device: torch.device) -> list[dict]:
    """Cross-entropy on seen classes with horizontal flips.

    With a frozen encoder its maps are computed once and flipped together with the labels, which is
    exact for the flip-equivariant part and turns each epoch into a pass over the head alone.
    """
    network = network.to(device)
    rng = torch_generator(seed)
    if params.freeze_encoder:
        network.encoder.eval().requires_grad_(False)
        inputs = []
        with torch.no_grad():
            for start in tqdm(range(0, len(images), 64), desc="encode", unit="batch", leave=False):
                low, high = network.encoder(images[start:start + 64].to(device).float())
                inputs.append((low.cpu(), high.cpu()))
        low_maps = torch.cat([low for low, _ in inputs])
        high_maps = torch.cat([high for _, high in inputs])
        trainable = [*network.head.parameters(), *network.classifier.parameters()]
    else:
        trainable = list(network.parameters())
    optimiser = torch.optim.AdamW(trainable, lr=params.learning_rate, weight_decay=params.weight_decay)
    steps_per_epoch = -(-len(images) // params.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: (1 - step / (params.epochs * steps_per_epoch)) ** 0.9)
    log = []
    progress = tqdm(range(params.epochs), desc="backbone", unit="epoch")
    for epoch in progress:
        network.head.train()
        network.classifier.train()
        if not params.freeze_encoder:
            network.encoder.train()
        order = torch.randperm(len(images), generator=rng)
        total, seen_pixels = 0.0, 0
        for start in range(0, len(images), params.batch_size):
            index = order[start:start + params.batch_size]
            flip = torch.rand(index.numel(), generator=rng) < 0.5
            target = labels[index].long()
            target[flip] = target[flip].flip(-1)
            if params.freeze_encoder:
                low, high = low_maps[index].clone(), high_maps[index].clone()
                low[flip], high[flip] = low[flip].flip(-1), high[flip].flip(-1)
                logits = network.classifier(network.head(low.to(device), high.to(device)))
            else:
                batch = images[index].float()
                batch[flip] = batch[flip].flip(-1)
                logits = network(batch.to(device))
            logits = F.interpolate(logits, size=target.shape[1:], mode="bilinear", align_corners=False)
            loss = F.cross_entropy(logits, target.to(device), ignore_index=IGNORE_INDEX)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"backbone: epoch {epoch}: loss is {loss.item()}")
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += loss.item() * index.numel()
            seen_pixels += index.numel()
        log.append({"epoch": epoch, "loss": total / seen_pixels})
        progress.set_postfix(loss=f"{total / seen_pixels:.3f}")
    return log


@torch.no_grad()
def write_feature_cache(network: SegmentationNetwork, dataset: FolderDataset, split: str, class_split: ClassSplit,
                        path: str | Path, label_purity: float, batch_size: int, device: torch.device,
                        attributes: dict) -> None:
    """Run the frozen network over a split and cache features and labels.

    In the train split every unseen label becomes 255 *before* anything is written, so no later
    stage can learn which unseen class a pixel belongs to.
    """
    network = network.to(device).eval()
    ids = dataset.ids(split)
    hide_unseen = split == "train"
    unseen_to_ignore = class_split.unseen_to_ignore_map()
    first_image, first_label = dataset.load(ids[0])
    height, width = first_label.shape
    if height % FEATURE_STRIDE or width % FEATURE_STRIDE:
        raise ValueError(f"{dataset.image_path(ids[0])}: size {width}x{height} is not a multiple of {FEATURE_STRIDE}")
    feature_shape = (height // FEATURE_STRIDE, width // FEATURE_STRIDE, network.feature_dim)
    attributes = {**attributes, "split": split, "stride": FEATURE_STRIDE, "feature_dim": network.feature_dim,
                  "class_names": list(class_split.names), "unseen": list(class_split.unseen),
                  "label_purity": label_purity, "unseen_labels": "ignored" if hide_unseen else "kept"}
    with FeatureCacheWriter(path, len(ids), feature_shape, (height, width), attributes) as writer:
        for start in tqdm(range(0, len(ids), batch_size), desc=f"features {split}", unit="batch"):
            batch_ids = ids[start:start + batch_size]
            images, labels = [], []
            for image_id in batch_ids:
                image, label = dataset.load(image_id)
                if label.shape != (height, width):
                    raise ValueError(f"{dataset.label_path(image_id)}: size {label.shape[1]}x{label.shape[0]} differs "
                                     f"from the split's {width}x{height}")
                images.append(torch.from_numpy(image).permute(2, 0, 1))
                labels.append(unseen_to_ignore[label] if hide_unseen else label)
            features = network.features(torch.stack(images).to(device).float()).permute(0, 2, 3, 1).cpu().numpy()
            for offset, image_id in enumerate(batch_ids):
                label = labels[offset]
                writer.write(start + offset, image_id, features[offset],
                             block_labels(label, FEATURE_STRIDE, label_purity), label)
