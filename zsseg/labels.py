"""Label conventions shared by every dataset, cache and metric: class index 0 is background, 255 is ignored."""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255
BACKGROUND = 0


# dataset.background: the classes it takes out of the task. include: none, background is a seen class (ZS3Net's
# K-splits); ignore: background (SPNet's and CaGNet's protocol). An ignored class's pixels are 255 wherever a
# label is loaded (FolderDataset.load_label), it has no training sample, its classifier row is masked so that it
# is never predicted (zsseg/classifier.py), and no metric counts it (zsseg/metrics.py).
IGNORED_CLASSES: dict[str, tuple[int, ...]] = {"include": (), "ignore": (BACKGROUND,)}


def ignored_classes(background: str) -> tuple[int, ...]:
    """The classes that ``dataset.background`` takes out of the task (IGNORED_CLASSES)."""
    return IGNORED_CLASSES[background]


def block_labels(label: np.ndarray, stride: int, purity: float, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The majority label of each stride x stride block, or 255 where it covers less than ``purity``.

    ``shape`` is the feature map's (h, w); a label that does not fill h * stride rows (or columns) is
    padded with 255, as a network's padded convolutions see the border.
    """
    height, width = shape if shape is not None else (label.shape[0] // stride, label.shape[1] // stride)
    padded = np.full((height * stride, width * stride), IGNORE_INDEX, dtype=np.uint8)
    rows, columns = min(label.shape[0], height * stride), min(label.shape[1], width * stride)
    padded[:rows, :columns] = label[:rows, :columns]
    blocks = padded.reshape(height, stride, width, stride).transpose(0, 2, 1, 3).reshape(height, width, stride * stride)
    # Counts of the values present only (a few classes, not 256): ties go to the smaller label.
    values = np.unique(blocks)
    counts = np.stack([(blocks == value).sum(axis=2) for value in values])
    majority = values[counts.argmax(axis=0)]
    share = counts.max(axis=0) / float(stride * stride)
    return np.where(share >= purity, majority, IGNORE_INDEX).astype(np.uint8)
