"""Evaluation on a cached split, streamed batch by batch: a classifier's confusion matrix, and the metrics
of every result of every method of a run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from zsseg.classifier import LOG_FILE, load_classifier
from zsseg.dense_prediction import predict
from zsseg.feature_cache import FeatureCache
from zsseg.methods import Result, results
from zsseg.metrics import confusion_matrix, segmentation_metrics


def evaluate_classifiers(cache: FeatureCache, classifiers: list[nn.Linear], batch_size: int,
                         device: torch.device) -> list[np.ndarray]:
    """The confusion matrix of each classifier over the split of ``cache``, read once for all of them."""
    num_classes = len(cache.class_names)
    confusions = [np.zeros((num_classes, num_classes), dtype=np.int64) for _ in classifiers]
    for batch in tqdm(cache.batches(batch_size), total=-(-len(cache) // batch_size), desc="evaluate",
                      unit="batch", leave=False):
        labels = torch.cat([label.reshape(-1) for label in batch.labels])
        for confusion, classifier in zip(confusions, classifiers):
            # One count per batch: per image, the bookkeeping costs more than the counting.
            predictions = torch.cat([prediction.reshape(-1) for prediction in predict(batch, classifier, device)])
            confusion += confusion_matrix(labels, predictions, num_classes)
    return confusions


def evaluate_classifier(cache: FeatureCache, classifier: nn.Linear, batch_size: int,
                        device: torch.device) -> np.ndarray:
    return evaluate_classifiers(cache, [classifier], batch_size, device)[0]


def evaluate_run(cache: FeatureCache, run: Path, rounds: list[int], batch_size: int, absent_classes: str,
                 device: torch.device) -> Iterator[tuple[Result, dict, np.ndarray]]:
    """Every result of every method in the run directory ``run``: its metrics and confusion matrix on the
    split of ``cache``. A recursive round's metrics also record how many unseen classes it mined."""
    found = results(rounds)
    confusions = evaluate_classifiers(cache, [load_classifier(run / result.directory) for result in found],
                                      batch_size, device)
    for result, confusion in zip(found, confusions):
        metrics = segmentation_metrics(confusion, cache.class_names, cache.unseen, absent_classes)
        log = json.loads((run / result.directory / LOG_FILE).read_text())
        if "mined_classes" in log:
            metrics["mined_classes"] = log["mined_classes"]
        yield result, metrics, confusion
