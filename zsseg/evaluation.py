"""Evaluation of every result of every method of a run on a split, from the network: each batch of images
goes through the run's frozen network once, and every classifier classifies its features. With test-time
augmentation (``evaluate.scales``, ``evaluate.flip``), each view of each batch goes through it once
(zsseg/dense_prediction.py).

Val and dev are not cached (zsseg/feature_cache.py): at VOC and Pascal-Context sizes their features would
take more disk than everything else a cell writes, and the network's pass over them is the same work the
features stage would have done to cache them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from zsseg.classifier import LOG_FILE, load_classifier
from zsseg.config import ParamsError
from zsseg.datasets.folder import ClassSplit
from zsseg.dense_prediction import TestTimeAugmentation, predict
from zsseg.feature_extraction import ImageBatch, SplitBatch
from zsseg.methods import Result, final_results, results
from zsseg.metrics import confusion_matrix, segmentation_metrics


def evaluate_classifiers(batches: Iterable[SplitBatch | ImageBatch], classifiers: list[nn.Linear], num_classes: int,
                         device: torch.device, augmentation: TestTimeAugmentation | None = None) -> list[np.ndarray]:
    """The confusion matrix of each classifier over the images of ``batches``, each batch used by all of them:
    their features (SplitBatch), or with ``augmentation`` their images (ImageBatch, zsseg/dense_prediction.py)."""
    confusions = [np.zeros((num_classes, num_classes), dtype=np.int64) for _ in classifiers]
    for batch in batches:
        if augmentation is not None and not isinstance(batch, ImageBatch):
            raise ParamsError(f"params.yaml: evaluate.scales = {augmentation.scales}, evaluate.flip = "
                              f"{augmentation.flip}: test-time augmentation runs the network on each rescaled or "
                              f"flipped image, and these batches hold feature maps at scale 1 only (cached or "
                              f"computed): set evaluate.scales: [1.0] and evaluate.flip: false, or pass the images")
        if augmentation is None and not isinstance(batch, SplitBatch):
            raise TypeError("evaluation without test-time augmentation classifies feature maps (SplitBatch)")
        labels = torch.cat([torch.from_numpy(label).reshape(-1) for label in batch.labels])
        if augmentation is None:
            predictions = (predict(batch, classifier, device) for classifier in classifiers)
        else:
            predictions = augmentation.labels(classifiers, batch.images, f"prediction: image {batch.ids[0]!r}..")
        for confusion, predicted in zip(confusions, predictions):
            # One count per batch: per image, the bookkeeping costs more than the counting.
            predicted = torch.cat([prediction.reshape(-1) for prediction in predicted])
            confusion += confusion_matrix(labels, predicted, num_classes)
    return confusions


def evaluate_run(batches: Iterable[SplitBatch | ImageBatch], class_split: ClassSplit, run: Path, rounds: list[int],
                 absent_classes: str, device: torch.device, augmentation: TestTimeAugmentation | None = None,
                 ) -> Iterator[tuple[Result, dict, np.ndarray]]:
    """Every result of every method in the run directory ``run``: its metrics and confusion matrix on the
    images of ``batches`` (see evaluate_classifiers). A recursive round's metrics also record how many unseen
    classes it mined."""
    found = results(rounds)
    confusions = evaluate_classifiers(batches, [load_classifier(run / result.directory) for result in found],
                                      class_split.num_classes, device, augmentation)
    for result, confusion in zip(found, confusions):
        metrics = segmentation_metrics(confusion, list(class_split.names), list(class_split.unseen), absent_classes,
                                       class_split.ignored)
        log = json.loads((run / result.directory / LOG_FILE).read_text())
        if "mined_classes" in log:
            metrics["mined_classes"] = log["mined_classes"]
        yield result, metrics, confusion


# The metrics of each method that `dvc exp show` shows: few enough columns for one screen over both splits.
HEADLINE_METRICS = ("hiou", "unseen_miou", "seen_miou")


def headline_metrics(metrics_by_split: dict[str, dict[str, dict]], rounds: list[int]) -> dict[str, dict]:
    """{split: {method key: {metric: value}}} of each method's final result, from {split: {result's metrics
    stem: its metrics}}: the one file DVC declares as metrics (the full files stay beside it)."""
    return {split: {result.method.key: {name: metrics[result.metrics][name] for name in HEADLINE_METRICS}
                    for result in final_results(rounds)}
            for split, metrics in metrics_by_split.items()}
