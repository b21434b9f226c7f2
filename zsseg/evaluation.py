"""Evaluation of every result of every method of a run on a split, from the network: each batch of images
goes through the run's frozen network once, and every classifier classifies its features.

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
from zsseg.datasets.folder import ClassSplit
from zsseg.dense_prediction import predict
from zsseg.feature_extraction import SplitBatch
from zsseg.methods import Result, final_results, results
from zsseg.metrics import confusion_matrix, segmentation_metrics


def evaluate_classifiers(batches: Iterable[SplitBatch], classifiers: list[nn.Linear], num_classes: int,
                         device: torch.device) -> list[np.ndarray]:
    """The confusion matrix of each classifier over the images of ``batches``, each batch used by all of them."""
    confusions = [np.zeros((num_classes, num_classes), dtype=np.int64) for _ in classifiers]
    for batch in batches:
        labels = torch.cat([torch.from_numpy(label).reshape(-1) for label in batch.labels])
        for confusion, classifier in zip(confusions, classifiers):
            # One count per batch: per image, the bookkeeping costs more than the counting.
            predictions = torch.cat([prediction.reshape(-1) for prediction in predict(batch, classifier, device)])
            confusion += confusion_matrix(labels, predictions, num_classes)
    return confusions


def evaluate_run(batches: Iterable[SplitBatch], class_split: ClassSplit, run: Path, rounds: list[int],
                 absent_classes: str, device: torch.device) -> Iterator[tuple[Result, dict, np.ndarray]]:
    """Every result of every method in the run directory ``run``: its metrics and confusion matrix on the
    images of ``batches``. A recursive round's metrics also record how many unseen classes it mined."""
    found = results(rounds)
    confusions = evaluate_classifiers(batches, [load_classifier(run / result.directory) for result in found],
                                      class_split.num_classes, device)
    for result, confusion in zip(found, confusions):
        metrics = segmentation_metrics(confusion, list(class_split.names), list(class_split.unseen), absent_classes)
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
