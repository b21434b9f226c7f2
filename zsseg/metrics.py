"""Generalised zero-shot segmentation metrics from a confusion matrix.

Rows are ground truth, columns are predictions. A class that is predicted but absent from the ground
truth has IoU 0 and counts in the means (but a class that ``dataset.background: ignore`` takes out of the task,
which counts in none). A class that is absent from the ground truth and never predicted
has an undefined IoU (0/0) and accuracy: ``evaluate.absent_classes`` decides. ``skip`` (our default)
leaves it out of every mean and reports it as null; ``zero`` counts it as 0, as ZS3Net's evaluator does
(``np.nan_to_num`` before its means), which lowers the means of a val set that lacks a class.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from zsseg.labels import IGNORE_INDEX


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> np.ndarray:
    """Accumulate a (C, C) int64 confusion matrix, skipping ``IGNORE_INDEX`` labels.

    Ignored pixels are counted in one extra bin that is dropped, which is much faster than masking.
    """
    labels = labels.reshape(-1).long()
    predictions = predictions.reshape(-1).long()
    valid = labels != IGNORE_INDEX
    if labels.numel() and int(torch.where(valid, labels, 0).max()) >= num_classes:
        raise ValueError(f"label value {int(torch.where(valid, labels, 0).max())} is not a class index below "
                         f"{num_classes} or 255")
    cells = num_classes * num_classes
    counts = torch.bincount(torch.where(valid, labels * num_classes + predictions, cells), minlength=cells + 1)
    return counts[:cells].reshape(num_classes, num_classes).cpu().numpy().astype(np.int64)


def write_confusion_csv(path: str | Path, confusion: np.ndarray, class_names: Sequence[str]) -> None:
    """The confusion matrix as CSV: a header of class names after ``ground_truth``, then one row per class.

    The csv module, not pandas: importing pandas took 0.3 s of the evaluate stage, for this alone.
    """
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["ground_truth", *class_names])
        writer.writerows([name, *row] for name, row in zip(class_names, confusion.tolist()))


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def per_class_iou(confusion: np.ndarray) -> np.ndarray:
    true_positive = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, true_positive / np.maximum(union, 1), np.nan)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    true_positive = np.diag(confusion).astype(np.float64)
    support = confusion.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, true_positive / np.maximum(support, 1), np.nan)


def harmonic_mean(seen: float, unseen: float) -> float:
    if np.isnan(seen) or np.isnan(unseen):
        return float("nan")
    return 0.0 if seen + unseen == 0 else 2.0 * seen * unseen / (seen + unseen)


def _group_pixel_accuracy(confusion: np.ndarray, classes: Sequence[int]) -> float:
    classes = list(classes)
    support = confusion[classes].sum()
    return float(np.diag(confusion)[classes].sum() / support) if support else float("nan")


# evaluate.absent_classes: what an undefined per-class IoU or accuracy (a class absent and never predicted) becomes.
ABSENT_CLASSES = {"skip": lambda values: values, "zero": np.nan_to_num}


def segmentation_metrics(confusion: np.ndarray, class_names: Sequence[str], unseen: Sequence[int],
                         absent_classes: str = "skip", ignored: Sequence[int] = ()) -> dict:
    """Flat metrics in percent (``pixel_acc, mean_acc, miou, seen_miou, unseen_miou, hiou`` and the
    seen/unseen pixel and mean accuracies), plus ``per_class_iou`` as {name: percent or None} and the names
    of the ``unseen_classes``.

    An ``ignored`` class (background, with ``dataset.background: ignore``) is neither seen nor unseen: its
    ground-truth pixels are left out as 255 are (its row of the confusion matrix is dropped), it counts in no
    mean whatever ``absent_classes`` says, and its IoU is null. A pixel of another class predicted as it still
    counts against that class."""
    unseen = sorted(set(unseen))
    seen = [c for c in range(len(class_names)) if c not in unseen and c not in ignored]
    counted = [c for c in range(len(class_names)) if c not in ignored]
    if ignored:
        confusion = confusion.copy()
        confusion[list(ignored)] = 0
    iou = ABSENT_CLASSES[absent_classes](per_class_iou(confusion))
    accuracy = ABSENT_CLASSES[absent_classes](per_class_accuracy(confusion))
    iou[list(ignored)] = accuracy[list(ignored)] = np.nan
    total = confusion.sum()
    seen_miou, unseen_miou = _nanmean(iou[seen]), _nanmean(iou[unseen])
    values = {
        "pixel_acc": float(np.diag(confusion).sum() / total) if total else float("nan"),
        "mean_acc": _nanmean(accuracy[counted]),
        "miou": _nanmean(iou[counted]),
        "seen_miou": seen_miou,
        "unseen_miou": unseen_miou,
        "hiou": harmonic_mean(seen_miou, unseen_miou),
        "seen_pixel_acc": _group_pixel_accuracy(confusion, seen),
        "unseen_pixel_acc": _group_pixel_accuracy(confusion, unseen),
        "seen_mean_acc": _nanmean(accuracy[seen]),
        "unseen_mean_acc": _nanmean(accuracy[unseen]),
    }
    metrics = {key: _percent(value) for key, value in values.items()}
    metrics["per_class_iou"] = {name: _percent(value) for name, value in zip(class_names, iou)}
    metrics["unseen_classes"] = [class_names[c] for c in unseen]
    return metrics


def _percent(value: float) -> float | None:
    return None if np.isnan(value) else round(100.0 * float(value), 4)
