"""Training the segmentation network on the seen classes only (the backbone stage)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from zsseg.config import BackboneParams, choose
from zsseg.datasets.folder import ClassSplit, DatasetError, FolderDataset
from zsseg.encoder_maps import EncoderMaps
from zsseg.labels import IGNORE_INDEX, block_labels
from zsseg.network import SegmentationNetwork, check_backbone_params
from zsseg.optimisers import SGD, Adam, Optimiser
from zsseg.resume_state import TrainingCheckpoint, global_random_states, set_global_random_states
from zsseg.runtime import mixed_precision, torch_generator


def seen_training_ids(dataset: FolderDataset, class_split: ClassSplit, log: Callable[[str], None]) -> list[str]:
    """The labelled training images, those without any unseen pixel (the ZS3Net protocol); warns about seen
    classes left without a pixel."""
    kept, pixel_counts = [], np.zeros(256, dtype=np.int64)
    ids = dataset.ids("train")
    for image_id in tqdm(ids, desc="select train", unit="img", leave=False):
        label = dataset.load_label(image_id)
        if class_split.is_unlabelled(label):
            continue
        kept.append(image_id)
        pixel_counts += np.bincount(label.reshape(-1), minlength=256)
    log(f"kept {len(kept)} of {len(ids)} training images; dropped {len(ids) - len(kept)} with unseen pixels")
    if not kept:
        raise DatasetError(f"{dataset.root / 'train.txt'}: every training image contains an unseen class "
                           f"({', '.join(class_split.names[i] for i in class_split.unseen)}): nothing is left "
                           f"to train on")
    for index in class_split.seen:
        if pixel_counts[index] == 0:
            log(f"warning: seen class {class_split.names[index]!r} has no pixel in the kept training images")
    return kept


def loss_labels(label: np.ndarray, stride: int) -> np.ndarray:
    """A label map at the resolution of the loss (``backbone.loss_label_stride``): the majority label of each
    stride x stride block. The logits are upsampled to it, so a stride > 1 trains on fewer label pixels."""
    return label if stride == 1 else block_labels(label, stride, purity=0.0)


class SeenTrainingImages(Dataset):
    """Kept training images with labels in seen-classifier indices, augmented per (seed, epoch, index).

    An item is ``(epoch, index)``: a worker process keeps its own copy of the dataset between epochs
    (persistent_workers), so the epoch comes with each item. With ``crop_size`` an image is randomly rescaled
    within ``scale_range``, padded (label 255) and cropped to crop_size x crop_size; every image is flipped
    with probability 1/2. Seeding each sample by its epoch and index keeps the augmentation independent of
    the number of loader workers and of where a resumed epoch starts. Labels come at the loss's resolution
    (``loss_labels``).
    """

    def __init__(self, dataset: FolderDataset, ids: list[str], class_split: ClassSplit, crop_size: int | None,
                 scale_range: list[float], loss_label_stride: int, seed: int) -> None:
        self.dataset, self.ids, self.crop_size, self.scale_range, self.seed = dataset, ids, crop_size, scale_range, seed
        self.loss_label_stride = loss_label_stride
        self.to_seen = class_split.seen_label_map()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = item
        rng = np.random.default_rng([self.seed, epoch, index])
        image, label = self.dataset.load(self.ids[index])
        label = self.to_seen[label]
        if self.crop_size is not None:
            image, label = self._scale_and_crop(image, label, rng)
        if rng.random() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        return (torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1),
                torch.from_numpy(loss_labels(np.ascontiguousarray(label), self.loss_label_stride)).long())

    def _scale_and_crop(self, image: np.ndarray, label: np.ndarray,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        scale = rng.uniform(*self.scale_range)
        height, width = max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale))
        image = np.array(Image.fromarray(image).resize((width, height), Image.BILINEAR))
        label = np.array(Image.fromarray(label).resize((width, height), Image.NEAREST))
        size = self.crop_size
        padded_image = np.zeros((max(height, size), max(width, size), 3), dtype=np.uint8)
        padded_label = np.full(padded_image.shape[:2], IGNORE_INDEX, dtype=np.uint8)
        padded_image[:height, :width], padded_label[:height, :width] = image, label
        top = int(rng.integers(0, padded_image.shape[0] - size + 1))
        left = int(rng.integers(0, padded_image.shape[1] - size + 1))
        return padded_image[top:top + size, left:left + size], padded_label[top:top + size, left:left + size]


@functools.lru_cache(maxsize=16)
def bilinear_weights(output_size: int, input_size: int) -> torch.Tensor:
    """(output_size, input_size): the weights with which ``F.interpolate(mode="bilinear", align_corners=False)``
    mixes the input along one axis (two taps per output, the source position clamped at the first pixel)."""
    source = ((torch.arange(output_size, dtype=torch.float64) + 0.5) * (input_size / output_size) - 0.5).clamp(min=0)
    first = source.floor().long().clamp(max=input_size - 1)
    second = (first + 1).clamp(max=input_size - 1)
    weights = torch.zeros(output_size, input_size, dtype=torch.float64)
    rows = torch.arange(output_size)
    weights.index_put_((rows, first), 1 - (source - first), accumulate=True)
    weights.index_put_((rows, second), source - first, accumulate=True)
    return weights.float()


def upsample_bilinear(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(logits, size, mode="bilinear", align_corners=False)`` as two matrix products, equal up
    to float rounding. On the CPU, aten's backward of the upsampling took 12 of the backbone's ~100 ms per
    step (the demo's 16 -> 128 px logits); the products' forward and backward take 3. Evaluation keeps
    F.interpolate: on a ResNet's larger stride-4 maps the products cost more than its two taps per pixel."""
    rows = bilinear_weights(size[0], logits.shape[-2]).to(logits.device)
    columns = bilinear_weights(size[1], logits.shape[-1]).to(logits.device)
    return rows @ logits @ columns.T


# backbone.optimizer: poly(0.9) decay either way.
OPTIMISERS: dict[str, Callable[[list[dict], BackboneParams], Optimiser]] = {
    "adamw": lambda groups, params: Adam(groups, lr=params.learning_rate, weight_decay=params.weight_decay,
                                         decoupled_weight_decay=True),
    "sgd": lambda groups, params: SGD(groups, lr=params.learning_rate, momentum=params.momentum,
                                      weight_decay=params.weight_decay),
}


def _optimiser(network: SegmentationNetwork, params: BackboneParams) -> Optimiser:
    head = network.head_parameters()
    groups = [{"params": head, "lr": params.learning_rate * params.head_lr_multiplier}]
    if not params.freeze_encoder:
        groups.insert(0, {"params": list(network.encoder.parameters()), "lr": params.learning_rate})
    return OPTIMISERS[params.optimizer](groups, params)


# A training's batches: ``batches(epoch, first_batch)`` draws the epoch's order from the training's generator
# and yields its batches from ``first_batch`` on, drawing for the skipped ones what a whole epoch draws.
EpochBatches = Callable[[int, int], Iterator]


def _frozen_encoder_batches(network: SegmentationNetwork, training_images: SeenTrainingImages, batch_size: int,
                            rng: torch.Generator, device: torch.device, maps: EncoderMaps | None) -> EpochBatches:
    """Whole images of one size through a frozen encoder: its maps are computed once, or read from the
    encode stage's shared ``maps``.

    The maps are flipped together with the labels, which is exact for the flip-equivariant part and
    turns each epoch into a pass over the head alone.
    """
    dataset, ids = training_images.dataset, training_images.ids
    if maps is not None:
        labels = [dataset.load_label(image_id) for image_id in tqdm(ids, desc="load train labels", unit="img",
                                                                      leave=False)]
        low_maps, high_maps = maps.read("train", ids)
    else:
        images, labels = [], []
        for image_id in tqdm(ids, desc="load train", unit="img", leave=False):
            image, label = dataset.load(image_id)
            if images and image.shape[:2] != tuple(images[0].shape[1:]):
                raise ValueError(f"{dataset.image_path(image_id)}: size {image.shape[1]}x{image.shape[0]} "
                                 f"differs from the first training image; set backbone.crop_size to train on crops")
            images.append(torch.from_numpy(image).permute(2, 0, 1))
            labels.append(label)
        images_tensor, encoded = torch.stack(images), []
        with torch.no_grad():
            for start in tqdm(range(0, len(images_tensor), 64), desc="encode", unit="batch", leave=False):
                low, high = network.encoder(images_tensor[start:start + 64].to(device).float())
                encoded.append((low.cpu(), high.cpu()))
        low_maps = torch.cat([low for low, _ in encoded])
        high_maps = torch.cat([high for _, high in encoded])
    labels_tensor = torch.stack([torch.from_numpy(loss_labels(training_images.to_seen[label],
                                                              training_images.loss_label_stride))
                                 for label in labels])

    def epoch(_: int, first_batch: int) -> Iterator:
        order = torch.randperm(len(ids), generator=rng)
        for batch, start in enumerate(range(0, len(ids), batch_size)):
            index = order[start:start + batch_size]
            flip = torch.rand(index.numel(), generator=rng) < 0.5
            if batch < first_batch:
                continue
            target = labels_tensor[index].long()
            target[flip] = target[flip].flip(-1)
            low, high = low_maps[index], high_maps[index]  # copies (indexing): the flips leave the maps alone
            low[flip], high[flip] = low[flip].flip(-1), high[flip].flip(-1)
            yield (low, high), target

    return epoch


class ResumableBatchSampler(Sampler[list[tuple[int, int]]]):
    """The DataLoader's batches of one epoch, in an order drawn by the training, from any batch on: a resumed
    epoch continues where it stopped. Items are ``(epoch, index)`` (SeenTrainingImages)."""

    def __init__(self, size: int, batch_size: int, drop_last: bool) -> None:
        self.size, self.batch_size, self.drop_last = size, batch_size, drop_last
        self.epoch, self.order, self.first_batch = 0, list(range(size)), 0

    def __len__(self) -> int:
        return self.size // self.batch_size if self.drop_last else -(-self.size // self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for batch in range(self.first_batch, len(self)):
            yield [(self.epoch, index) for index in self.order[batch * self.batch_size:(batch + 1) * self.batch_size]]


def _loader_batches(training_images: SeenTrainingImages, params: BackboneParams, rng: torch.Generator, seed: int,
                    device: torch.device) -> tuple[EpochBatches, int]:
    """Augmented images through a DataLoader, and the number of batches of an epoch."""
    # drop_last: BatchNorm after the image pooling cannot train on a batch of one.
    sampler = ResumableBatchSampler(len(training_images), params.batch_size,
                                    drop_last=len(training_images) > params.batch_size)
    # The loader's own generator: it draws a seed for its workers at each iterator (each epoch without
    # persistent workers), which would otherwise come from torch's global generator, dropout's. The samples
    # are seeded by (seed, epoch, index), so the workers' seeds change nothing and it is not saved.
    loader = DataLoader(training_images, batch_sampler=sampler, num_workers=params.workers,
                        pin_memory=device.type == "cuda", persistent_workers=params.workers > 0,
                        generator=torch_generator(seed))

    def epoch(number: int, first_batch: int) -> Iterator:
        # Set before iterating: the loader's workers fetch the first batches as soon as its iterator starts.
        sampler.epoch, sampler.first_batch = number, first_batch
        sampler.order = torch.randperm(len(training_images), generator=rng).tolist()
        yield from loader

    return epoch, len(sampler)


def train_segmentation_network(network: SegmentationNetwork, dataset: FolderDataset, ids: list[str],
                               class_split: ClassSplit, params: BackboneParams, seed: int,
                               device: torch.device, maps: EncoderMaps | None = None,
                               resume: TrainingCheckpoint | None = None) -> list[dict]:
    """Cross-entropy on seen classes; poly(0.9) learning-rate decay; flips, and random scale/crop with crop_size.
    ``maps``: the encoder's shared maps (backbone.share_encoder_maps), read instead of running it. ``resume``:
    where the training saves its resume state, and continues from it when it is there (zsseg/resume_state.py);
    a resumed training ends with the same bytes as one that ran through."""
    network = network.to(device)
    saved = resume.load(device) if resume else None
    rng = torch_generator(seed)
    training_images = SeenTrainingImages(dataset, ids, class_split, params.crop_size, params.scale_range,
                                         params.loss_label_stride, seed)
    if params.freeze_encoder:
        network.encoder.eval().requires_grad_(False)
    precomputed = params.freeze_encoder and params.crop_size is None
    if precomputed:
        batches = _frozen_encoder_batches(network, training_images, params.batch_size, rng, device, maps)
        steps_per_epoch = -(-len(ids) // params.batch_size)
    else:
        batches, steps_per_epoch = _loader_batches(training_images, params, rng, seed, device)
    optimiser = _optimiser(network, params)
    total_steps = params.epochs * steps_per_epoch
    # Where the training stands: the epoch, the batches of it done, their loss sums, the finished epochs' log.
    first_epoch, batches_done, total, images_seen, log = 0, 0, 0.0, 0, []
    if saved is not None:
        network.load_state_dict(saved["network"])
        optimiser.load_state_dict(saved["optimiser"])
        set_global_random_states(saved["random"])
        # The generator as the saved epoch started: its order and the skipped batches' flips are drawn again.
        rng.set_state(saved["epoch_generator"])
        first_epoch, batches_done = saved["epoch"], saved["batches_done"]
        total, images_seen, log = saved["loss_sum"], saved["images_seen"], saved["log"]
        # 1-based, as a person counts: the epoch and the step of it that run next.
        resume.log(f"resuming from the training checkpoint {resume.path}: epoch {first_epoch + 1} of {params.epochs}, "
                   f"step {batches_done + 1} of {steps_per_epoch} "
                   f"(written {time.strftime('%H:%M:%S', time.localtime(saved['written']))})")

    def save(epoch: int, epoch_generator: torch.Tensor) -> None:
        resume.save({"device": device.type, "network": network.state_dict(), "optimiser": optimiser.state_dict(),
                     "random": global_random_states(), "epoch_generator": epoch_generator, "epoch": epoch,
                     "batches_done": batches_done, "loss_sum": total, "images_seen": images_seen, "log": log})

    progress = tqdm(range(first_epoch, params.epochs), desc="backbone", unit="epoch", initial=first_epoch,
                    total=params.epochs)
    for epoch in progress:
        epoch_generator = rng.get_state()
        network.head.train()
        network.classifier.train()
        if not params.freeze_encoder:
            network.encoder.train()
        for inputs, target in batches(epoch, batches_done):
            # A batch without a labelled pixel (crops of background alone, with dataset.background: ignore) has no
            # loss (0/0) and nothing to learn from: no step, and the schedule moves on as for any batch.
            if bool((target != IGNORE_INDEX).any()):
                with mixed_precision(device, params.mixed_precision):
                    if precomputed:
                        low, high = inputs
                        logits = network.classifier(network.head(low.to(device), high.to(device)))
                    else:
                        logits = network(inputs.to(device, non_blocking=True).float())
                loss = F.cross_entropy(upsample_bilinear(logits.float(), target.shape[1:]),
                                       target.to(device, non_blocking=True), ignore_index=IGNORE_INDEX)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"backbone: epoch {epoch}: loss is {loss.item()}")
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += loss.item() * target.shape[0]
                images_seen += target.shape[0]
            batches_done += 1
            # The poly schedule's position: the steps done, counted from where the training stands.
            optimiser.schedule((1 - (epoch * steps_per_epoch + batches_done) / total_steps) ** 0.9)
            if resume and batches_done < steps_per_epoch and resume.due():
                save(epoch, epoch_generator)
        log.append({"epoch": epoch, "loss": total / max(images_seen, 1)})
        progress.set_postfix(loss=f"{total / max(images_seen, 1):.3f}")
        batches_done, total, images_seen = 0, 0.0, 0
        # Not after the last epoch: the stage writes its output next, and then deletes the resume state.
        if resume and epoch + 1 < params.epochs:
            save(epoch + 1, rng.get_state())
    return log


def check_training_params(backbone: BackboneParams) -> None:
    """The backbone section's registry entries (architecture, weights, optimiser), before any training."""
    check_backbone_params(backbone)
    choose(OPTIMISERS, "backbone.optimizer", backbone.optimizer)
