"""The confusion matrix of a classifier over a whole cached split, streamed batch by batch."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from zsseg.dense_prediction import predict
from zsseg.feature_cache import FeatureCache
from zsseg.metrics import confusion_matrix


def evaluate_classifier(cache: FeatureCache, classifier: nn.Linear, batch_size: int,
                        device: torch.device) -> np.ndarray:
    num_classes = len(cache.class_names)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    for batch in tqdm(cache.batches(batch_size), total=-(-len(cache) // batch_size), desc="evaluate",
                      unit="batch", leave=False):
        for label, prediction in zip(batch.labels, predict(batch, classifier, device)):
            confusion += confusion_matrix(label, prediction, num_classes)
    return confusion
