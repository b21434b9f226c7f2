"""ZS3Net and recursive ZS-MMD on cached features: sampling, generator and classifier training,
confident pseudo-features and dense prediction.

Reading of Wang, Farazi & Barnes (IJCNN 2021) implemented here (its full text was not available):
the previous round's classifier labels the *unlabelled* pixels of the training cache; a pixel whose
top class is an unseen class u with softmax confidence >= threshold becomes a pseudo-feature of u,
weighted by that confidence. The generator is then trained on MMD(seen) + lambda * weighted MMD(u).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from zsseg.config import ClassifierParams, GeneratorParams
from zsseg.feature_cache import CacheBatch, FeatureCache
from zsseg.generator import FeatureGenerator
from zsseg.metrics import IGNORE_INDEX, confusion_matrix
from zsseg.mmd import mmd_loss
from zsseg.runtime import torch_generator


class NumericalError(FloatingPointError):
    """A loss, generated feature or logit became NaN or Inf."""


def sample_class_features(cache: FeatureCache, classes: Sequence[int], per_class: int, seed: int,
                          batch_size: int = 64) -> dict[int, torch.Tensor]:
    """A uniform sample of at most ``per_class`` labelled feature vectors per class, streamed.

    Each pixel draws a random key; a class keeps the pixels with the smallest keys. The keys are drawn
    for every pixel whatever its label, so the random stream does not depend on the labels.
    """
    rng = torch_generator(seed)
    keys = {c: torch.empty(0) for c in classes}
    kept = {c: torch.empty(0, cache.feature_dim) for c in classes}
    for batch in tqdm(cache.batches(batch_size), total=-(-len(cache) // batch_size), desc="sample features",
                      unit="batch", leave=False):
        features = batch.features
        labels = batch.feature_labels.long()
        pixel_keys = torch.rand(labels.numel(), generator=rng)
        for c in classes:
            mask = labels == c
            if not mask.any():
                continue
            merged_keys = torch.cat([keys[c], pixel_keys[mask]])
            merged = torch.cat([kept[c], features[mask]])
            if merged_keys.numel() > per_class:
                order = torch.argsort(merged_keys, stable=True)[:per_class]
                merged_keys, merged = merged_keys[order], merged[order]
            keys[c], kept[c] = merged_keys, merged
    return {c: kept[c] for c in classes if kept[c].shape[0] > 0}


@dataclass
class PseudoFeatures:
    """Confident pseudo-features of unseen classes mined from unlabelled training pixels."""

    features: torch.Tensor     # (N, D) float32
    classes: torch.Tensor      # (N,) int64, dataset class indices
    confidences: torch.Tensor  # (N,) float32

    def by_class(self) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        return {int(c): (self.features[self.classes == c], self.confidences[self.classes == c])
                for c in torch.unique(self.classes)}

    def save(self, path: str | Path, attributes: dict) -> None:
        with h5py.File(path, "w") as handle:
            handle.create_dataset("features", data=self.features.numpy().astype(np.float32))
            handle.create_dataset("classes", data=self.classes.numpy().astype(np.int64))
            handle.create_dataset("confidences", data=self.confidences.numpy().astype(np.float32))
            for key, value in attributes.items():
                handle.attrs[key] = value

    @classmethod
    def load(cls, path: str | Path) -> "PseudoFeatures":
        with h5py.File(path, "r") as handle:
            return cls(torch.from_numpy(handle["features"][:]), torch.from_numpy(handle["classes"][:]),
                       torch.from_numpy(handle["confidences"][:]))


def linear_classifier(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    classifier = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        classifier.weight.copy_(weight)
        classifier.bias.copy_(bias)
    return classifier.eval()


@torch.no_grad()
def extract_pseudo_features(cache: FeatureCache, classifier: nn.Linear, unseen: Sequence[int], threshold: float,
                            per_class_cap: int, min_count: int, batch_size: int, device: torch.device,
                            stage: str = "pseudo-features") -> tuple[PseudoFeatures, dict[str, dict]]:
    """Mine pseudo-features from the pixels whose label is 255 (the train cache holds no unseen label).

    Per unseen class the ``per_class_cap`` most confident pixels are kept; a class with fewer than
    ``min_count`` is dropped. Returns the features and per-class counts for the log.
    """
    classifier = classifier.to(device).eval()
    unseen_tensor = torch.tensor(sorted(unseen), device=device)
    selected = {u: (torch.empty(0, cache.feature_dim), torch.empty(0)) for u in sorted(unseen)}
    candidates = {u: 0 for u in sorted(unseen)}
    for batch in tqdm(cache.batches(batch_size), total=-(-len(cache) // batch_size), desc="pseudo-features",
                      unit="batch", leave=False):
        features = batch.features
        unlabelled = batch.feature_labels == IGNORE_INDEX
        features = features[unlabelled]
        if features.shape[0] == 0:
            continue
        logits = classifier(features.to(device))
        if not torch.isfinite(logits).all():
            raise NumericalError(f"{stage}: pseudo-features: the previous round's classifier gives NaN or Inf "
                                 f"logits in images {batch.ids[0]!r}..{batch.ids[-1]!r}")
        confidence, top = logits.softmax(dim=1).max(dim=1)
        confident = torch.isin(top, unseen_tensor) & (confidence >= threshold)
        for u in selected:
            mask = (confident & (top == u)).cpu()
            candidates[u] += int(mask.sum())
            if not mask.any():
                continue
            merged = torch.cat([selected[u][0], features[mask]])
            merged_confidence = torch.cat([selected[u][1], confidence.cpu()[mask]])
            order = torch.argsort(-merged_confidence, stable=True)[:per_class_cap]
            selected[u] = (merged[order], merged_confidence[order])
    stats, parts = {}, []
    for u, (features, confidence) in selected.items():
        kept = features.shape[0] >= max(min_count, 1)
        stats[cache.class_names[u]] = {"confident_pixels": candidates[u], "kept": features.shape[0] if kept else 0,
                                       "skipped": not kept}
        if kept:
            parts.append((features, torch.full((features.shape[0],), u, dtype=torch.int64), confidence))
    if not parts:
        return PseudoFeatures(torch.empty(0, cache.feature_dim), torch.empty(0, dtype=torch.int64),
                              torch.empty(0)), stats
    return PseudoFeatures(*(torch.cat(column) for column in zip(*parts))), stats


def train_generator(generator: FeatureGenerator, embeddings: torch.Tensor, real: dict[int, torch.Tensor],
                    params: GeneratorParams, steps: int, seed: int, device: torch.device, stage: str,
                    pseudo: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None,
                    zs_mmd_lambda: float = 0.0) -> list[dict]:
    """Train with the mean per-class MMD on seen classes, plus ``zs_mmd_lambda`` times the mean
    confidence-weighted MMD on the pseudo-labelled unseen classes (ZS-MMD) when ``pseudo`` is given."""
    generator = generator.to(device).train()
    optimiser = torch.optim.Adam(generator.parameters(), lr=params.learning_rate)
    rng = torch_generator(seed)
    n = params.samples_per_class
    pseudo = pseudo or {}
    seen_classes, pseudo_classes = sorted(real), sorted(pseudo)
    class_ids = torch.tensor(seen_classes + pseudo_classes)
    class_embeddings = embeddings[class_ids].to(device).repeat_interleave(n, dim=0)
    log = []
    for step in tqdm(range(steps), desc=f"{stage} generator", unit="step", leave=False):
        seen_targets = torch.stack([real[c][torch.randint(real[c].shape[0], (n,), generator=rng)]
                                    for c in seen_classes]).to(device)
        pseudo_samples = [torch.randint(pseudo[u][0].shape[0], (n,), generator=rng) for u in pseudo_classes]
        noise = torch.randn(class_ids.numel() * n, generator.noise_dim, generator=rng).to(device)
        generated = generator(class_embeddings, noise).reshape(class_ids.numel(), n, -1)
        seen_terms = mmd_loss(generated[:len(seen_classes)], seen_targets, params.bandwidths)
        terms = {"seen": seen_terms}
        if pseudo_classes:
            pseudo_targets = torch.stack([pseudo[u][0][index] for u, index in zip(pseudo_classes, pseudo_samples)])
            pseudo_weights = torch.stack([pseudo[u][1][index] for u, index in zip(pseudo_classes, pseudo_samples)])
            terms["pseudo"] = mmd_loss(generated[len(seen_classes):], pseudo_targets.to(device), params.bandwidths,
                                       pseudo_weights.to(device))
        for kind, values in terms.items():
            if not torch.isfinite(values).all():
                bad = int(torch.nonzero(~torch.isfinite(values))[0])
                c = (seen_classes if kind == "seen" else pseudo_classes)[bad]
                raise NumericalError(f"{stage}: step {step}: MMD of class {c} ({kind}) is {values[bad].item()}")
        seen_loss = seen_terms.mean()
        pseudo_loss = terms["pseudo"].mean() if pseudo_classes else torch.zeros((), device=device)
        loss = seen_loss + zs_mmd_lambda * pseudo_loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 25 == 0 or step == steps - 1:
            log.append({"step": step, "loss": loss.item(), "seen_mmd": seen_loss.item(),
                        "pseudo_mmd": pseudo_loss.item()})
    return log


@torch.no_grad()
def generate_features(generator: FeatureGenerator, embeddings: torch.Tensor, classes: Sequence[int], count: int,
                      seed: int, device: torch.device, stage: str) -> dict[int, torch.Tensor]:
    """``count`` generated features per class.

    Dropout stays active: the MMD was minimised for the generator *with* dropout, so that is the
    distribution that matches the real features (eval mode would sample a narrower one).
    """
    generator = generator.to(device).train()
    rng = torch_generator(seed)
    torch.manual_seed(seed)
    generated = {}
    for c in classes:
        noise = torch.randn(count, generator.noise_dim, generator=rng).to(device)
        features = generator(embeddings[c].to(device).expand(count, -1), noise).cpu()
        if not torch.isfinite(features).all():
            raise NumericalError(f"{stage}: generated features of class {c} contain NaN or Inf")
        generated[c] = features
    return generated


FixedRows = dict[int, tuple[torch.Tensor, torch.Tensor]]


def train_classifier(features: dict[int, torch.Tensor], num_classes: int, params: ClassifierParams, seed: int,
                     device: torch.device, stage: str,
                     fixed_rows: FixedRows | None = None) -> tuple[nn.Linear, list[dict]]:
    """The final 1x1 classifier over all classes, trained on real seen plus generated unseen features.

    ``fixed_rows`` maps classes to a (weight, bias) row that is kept as it is: only the other rows
    learn, so adding a class moves pixels to it and nowhere else.
    """
    rng = torch_generator(seed)
    inputs = torch.cat([features[c] for c in sorted(features)])
    targets = torch.cat([torch.full((features[c].shape[0],), c, dtype=torch.int64) for c in sorted(features)])
    torch.manual_seed(seed)
    classifier = nn.Linear(inputs.shape[1], num_classes).to(device)
    if fixed_rows:
        learns = torch.ones(num_classes, 1, device=device)
        with torch.no_grad():
            for c, (weight, bias) in fixed_rows.items():
                classifier.weight[c], classifier.bias[c] = weight, bias
                learns[c] = 0.0
        classifier.weight.register_hook(lambda gradient: gradient * learns)
        classifier.bias.register_hook(lambda gradient: gradient * learns[:, 0])
    optimiser = torch.optim.Adam(classifier.parameters(), lr=params.learning_rate)
    log = []
    for epoch in tqdm(range(params.epochs), desc=f"{stage} classifier", unit="epoch", leave=False):
        order = torch.randperm(inputs.shape[0], generator=rng)
        total = 0.0
        for start in range(0, inputs.shape[0], params.batch_size):
            index = order[start:start + params.batch_size]
            loss = F.cross_entropy(classifier(inputs[index].to(device)), targets[index].to(device))
            if not torch.isfinite(loss):
                raise NumericalError(f"{stage}: classifier epoch {epoch}: loss is {loss.item()}")
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * index.numel()
        log.append({"epoch": epoch, "loss": total / inputs.shape[0]})
    return classifier.cpu().eval(), log


@torch.no_grad()
def predict(batch: CacheBatch, classifier: nn.Linear, device: torch.device) -> list[torch.Tensor]:
    """Dense predictions at each image's label resolution: logits upsampled bilinearly, then argmax.

    Consecutive images of one size are classified and upsampled together.
    """
    classifier = classifier.to(device)
    features = batch.image_features()
    predictions: list[torch.Tensor] = []
    start = 0
    while start < len(features):
        stop = start + 1
        while (stop < len(features) and features[stop].shape == features[start].shape
               and batch.labels[stop].shape == batch.labels[start].shape):
            stop += 1
        predictions.extend(dense_labels(classifier, torch.stack(features[start:stop]), tuple(batch.labels[start].shape),
                                        device, f"prediction: image {batch.ids[start]!r}.."))
        start = stop
    return predictions


@torch.no_grad()
def dense_labels(classifier: nn.Linear, features: torch.Tensor, size: tuple[int, int], device: torch.device,
                 where: str) -> torch.Tensor:
    """Class indices (B, H, W) of feature maps (B, h, w, D) of one size: logits upsampled bilinearly
    to ``size``, then argmax. The evaluate stage and `zsseg predict` both classify through here."""
    logits = classifier.to(device)(features.to(device)).permute(0, 3, 1, 2)
    if not torch.isfinite(logits).all():
        raise NumericalError(f"{where}: logits contain NaN or Inf")
    logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return logits.argmax(dim=1).cpu()


def evaluate_classifier(cache: FeatureCache, classifier: nn.Linear, batch_size: int,
                        device: torch.device) -> np.ndarray:
    num_classes = len(cache.class_names)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    for batch in tqdm(cache.batches(batch_size), total=-(-len(cache) // batch_size), desc="evaluate",
                      unit="batch", leave=False):
        for label, prediction in zip(batch.labels, predict(batch, classifier, device)):
            confusion += confusion_matrix(label, prediction, num_classes)
    return confusion


def top_percent_mask(confidences: torch.Tensor, predicted: torch.Tensor, classes: Sequence[int],
                     percent: float) -> torch.Tensor:
    """ZS5Net's selection: per class c, the ceil(percent % of n_c) most confident of the n_c pixels
    predicted as c. Equal confidences are broken by position, earlier first, so the count is exact."""
    selected = torch.zeros(confidences.shape[0], dtype=torch.bool)
    for c in classes:
        candidates = torch.nonzero(predicted == c).reshape(-1)
        keep = math.ceil(percent / 100.0 * candidates.numel())
        if keep == 0:
            continue
        order = torch.argsort(-confidences[candidates], stable=True)[:keep]
        selected[candidates[order]] = True
    return selected


@torch.no_grad()
def self_training_features(cache: FeatureCache, classifier: nn.Linear, unseen: Sequence[int], percent: float,
                           per_class_cap: int, batch_size: int,
                           device: torch.device) -> tuple[dict[int, torch.Tensor], dict[str, dict]]:
    """ZS5Net's pseudo-labels on the unlabelled (255) training pixels, in two streamed passes.

    Pass one scores every unlabelled pixel; the top ``percent`` % of the pixels predicted as each
    unseen class are selected over the whole split. Pass two collects their features (at most
    ``per_class_cap`` per class, the most confident first).
    """
    classifier = classifier.to(device).eval()
    confidences, predicted = [], []
    for batch in tqdm(cache.batches(batch_size), total=-(-len(cache) // batch_size), desc="self-training scores",
                      unit="batch", leave=False):
        features = batch.features[batch.feature_labels == IGNORE_INDEX]
        if features.shape[0] == 0:
            continue
        logits = classifier(features.to(device))
        if not torch.isfinite(logits).all():
            raise NumericalError(f"self_training: round 0's classifier gives NaN or Inf logits in images "
                                 f"{batch.ids[0]!r}..{batch.ids[-1]!r}")
        confidence, top = logits.softmax(dim=1).max(dim=1)
        confidences.append(confidence.cpu())
        predicted.append(top.cpu())
    confidences = torch.cat(confidences) if confidences else torch.empty(0)
    predicted = torch.cat(predicted) if predicted else torch.empty(0, dtype=torch.int64)
    selected = top_percent_mask(confidences, predicted, unseen, percent)
    for c in unseen:
        in_class = torch.nonzero(selected & (predicted == c)).reshape(-1)
        if in_class.numel() > per_class_cap:
            drop = in_class[torch.argsort(-confidences[in_class], stable=True)[per_class_cap:]]
            selected[drop] = False
    collected: dict[int, list[torch.Tensor]] = {c: [] for c in unseen}
    offset = 0
    for batch in cache.batches(batch_size):
        features = batch.features[batch.feature_labels == IGNORE_INDEX]
        window = slice(offset, offset + features.shape[0])
        offset += features.shape[0]
        for c in unseen:
            mask = selected[window] & (predicted[window] == c)
            if mask.any():
                collected[c].append(features[mask])
    pseudo = {c: torch.cat(parts) for c, parts in collected.items() if parts}
    stats = {cache.class_names[c]: {"predicted_pixels": int((predicted == c).sum()),
                                    "kept": int(pseudo[c].shape[0]) if c in pseudo else 0} for c in unseen}
    return pseudo, stats
