"""The final 1x1 classifier over all classes, trained on (real or generated) feature vectors, and its file."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from zsseg.optimisers import Adam
from zsseg.config import ClassifierParams
from zsseg.errors import NumericalError
from zsseg.runtime import torch_generator
from zsseg.checkpoints import load_weights_only

CLASSIFIER_FILE = "classifier.pt"
LOG_FILE = "training_log.json"


def linear_classifier(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    classifier = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        classifier.weight.copy_(weight)
        classifier.bias.copy_(bias)
    return classifier.eval()


FixedRows = dict[int, tuple[torch.Tensor, torch.Tensor]]

# The logit of a masked class (``dataset.background: ignore``): its row is weight 0 and this bias, whatever the
# features. Its softmax probability is exactly 0 in float32 beside any trained row's logit, so no argmax (the
# evaluation, the report, `zsseg predict`) and no softmax confidence (the mining, ZS5Net) ever picks it. Finite,
# unlike -inf: F.interpolate's zero-weight taps would turn -inf into NaN, and it stays finite in float16.
MASKED_LOGIT = -1.0e4


def masked_row(feature_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(feature_dim), torch.tensor(MASKED_LOGIT)


def is_masked(classifier: nn.Linear, c: int) -> bool:
    """Whether row ``c`` of a trained classifier is a masked class's (``masked_row``)."""
    return bool(classifier.bias[c] == MASKED_LOGIT and not classifier.weight[c].any())


def train_classifier(features: dict[int, torch.Tensor], num_classes: int, params: ClassifierParams, seed: int,
                     device: torch.device, stage: str, unseen: Sequence[int] = (),
                     fixed_rows: FixedRows | None = None, masked: Sequence[int] = ()) -> tuple[nn.Linear, list[dict]]:
    """The final 1x1 classifier over all classes, trained on real seen plus generated unseen features,
    with cross-entropy weight ``classifier.unseen_weight`` on the ``unseen`` classes (ZS3Net: 100).

    ``fixed_rows`` maps classes to a (weight, bias) row that is kept as it is: only the other rows
    learn, so adding a class moves pixels to it and nowhere else. A ``masked`` class (the background that
    ``dataset.background: ignore`` takes out of the task) gets the fixed ``masked_row``: it has no features, it
    takes no share of the softmax in training, and the saved classifier never predicts it.
    """
    overlap = sorted(set(masked) & set(features))
    if overlap:
        raise ValueError(f"{stage}: classes {overlap} are masked but have training features")
    rng = torch_generator(seed)
    inputs = torch.cat([features[c] for c in sorted(features)])
    targets = torch.cat([torch.full((features[c].shape[0],), c, dtype=torch.int64) for c in sorted(features)])
    fixed_rows = {**(fixed_rows or {}), **{c: masked_row(inputs.shape[1]) for c in masked}}
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
    optimiser = Adam(classifier.parameters(), lr=params.learning_rate)
    class_weights = torch.ones(num_classes, device=device)
    class_weights[list(unseen)] = params.unseen_weight
    log = []
    for epoch in tqdm(range(params.epochs), desc=f"{stage} classifier", unit="epoch", leave=False):
        order = torch.randperm(inputs.shape[0], generator=rng)
        # One gather per epoch, then slices of it: the same batches as one gather per batch, and faster.
        shuffled_inputs, shuffled_targets = inputs.index_select(0, order), targets.index_select(0, order)
        total = 0.0
        for batch_inputs, batch_targets in zip(shuffled_inputs.split(params.batch_size),
                                               shuffled_targets.split(params.batch_size)):
            loss = F.cross_entropy(classifier(batch_inputs.to(device)), batch_targets.to(device), class_weights)
            value = loss.item()
            if not math.isfinite(value):
                raise NumericalError(f"{stage}: classifier epoch {epoch}: loss is {value}")
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += value * batch_targets.numel()
        log.append({"epoch": epoch, "loss": total / inputs.shape[0]})
    return classifier.cpu().eval(), log


def save_classifier(directory: Path, classifier: nn.Linear, log: dict, class_names: list[str],
                    unseen: list[int]) -> None:
    """The classifier with the classes it scores, and the training log of the stage that made it."""
    torch.save({"weight": classifier.weight.detach().cpu(), "bias": classifier.bias.detach().cpu(),
                "class_names": class_names, "unseen": unseen}, directory / CLASSIFIER_FILE)
    (directory / LOG_FILE).write_text(json.dumps(log, indent=2) + "\n")


def load_classifier(directory: str | Path) -> nn.Linear:
    path = Path(directory) / CLASSIFIER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained classifier; run the stage that makes it first")
    checkpoint = load_weights_only(path)
    return linear_classifier(checkpoint["weight"], checkpoint["bias"])
