"""Metrics against hand-built confusion matrices."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from zsseg.metrics import confusion_matrix, harmonic_mean, segmentation_metrics, write_confusion_csv

NAMES = ["background", "cat", "dog", "cow"]


def test_confusion_matrix_counts_pairs_and_skips_ignore():
    labels = torch.tensor([[0, 0, 1, 255], [2, 2, 3, 1]])
    predictions = torch.tensor([[0, 1, 1, 3], [2, 0, 3, 1]])
    expected = np.zeros((4, 4), dtype=np.int64)
    for truth, predicted in [(0, 0), (0, 1), (1, 1), (2, 2), (2, 0), (3, 3), (1, 1)]:
        expected[truth, predicted] += 1
    np.testing.assert_array_equal(confusion_matrix(labels, predictions, 4), expected)


def test_confusion_matrix_rejects_out_of_range_label():
    with pytest.raises(ValueError, match="label value 7"):
        confusion_matrix(torch.tensor([7]), torch.tensor([0]), 4)


def test_metrics_of_hand_built_matrix():
    # rows: ground truth, columns: prediction; cow (3) is unseen and also dog (2).
    confusion = np.array([[50, 5, 0, 5],
                          [10, 30, 0, 0],
                          [0, 0, 20, 20],
                          [0, 0, 10, 30]])
    metrics = segmentation_metrics(confusion, NAMES, unseen=[2, 3])
    iou = {"background": 50 / (60 + 60 - 50), "cat": 30 / (40 + 35 - 30),
           "dog": 20 / (40 + 30 - 20), "cow": 30 / (40 + 55 - 30)}
    for name, value in iou.items():
        assert metrics["per_class_iou"][name] == pytest.approx(100 * value, abs=1e-3)
    seen = (iou["background"] + iou["cat"]) / 2
    unseen = (iou["dog"] + iou["cow"]) / 2
    assert metrics["seen_miou"] == pytest.approx(100 * seen, abs=1e-3)
    assert metrics["unseen_miou"] == pytest.approx(100 * unseen, abs=1e-3)
    assert metrics["miou"] == pytest.approx(100 * sum(iou.values()) / 4, abs=1e-3)
    assert metrics["hiou"] == pytest.approx(100 * 2 * seen * unseen / (seen + unseen), abs=1e-3)
    assert metrics["pixel_acc"] == pytest.approx(100 * 130 / 180, abs=1e-3)
    assert metrics["mean_acc"] == pytest.approx(100 * (50 / 60 + 30 / 40 + 20 / 40 + 30 / 40) / 4, abs=1e-3)
    assert metrics["seen_pixel_acc"] == pytest.approx(100 * 80 / 100, abs=1e-3)
    assert metrics["unseen_pixel_acc"] == pytest.approx(100 * 50 / 80, abs=1e-3)


def test_class_absent_from_ground_truth():
    # "dog" never occurs and is never predicted: undefined, left out of every mean.
    # "cow" never occurs but is predicted twice: IoU 0, counted.
    confusion = np.array([[8, 0, 0, 2],
                          [0, 5, 0, 0],
                          [0, 0, 0, 0],
                          [0, 0, 0, 0]])
    metrics = segmentation_metrics(confusion, NAMES, unseen=[2, 3])
    assert metrics["per_class_iou"]["dog"] is None
    assert metrics["per_class_iou"]["cow"] == 0.0
    assert metrics["unseen_miou"] == 0.0
    assert metrics["seen_miou"] == pytest.approx(100 * (8 / 10 + 5 / 5) / 2, abs=1e-3)
    assert metrics["hiou"] == 0.0
    assert metrics["mean_acc"] == pytest.approx(100 * (0.8 + 1.0) / 2, abs=1e-3)
    assert metrics["unseen_pixel_acc"] is None


def test_absent_classes_counted_as_zero_as_zs3net_does():
    """ZS3Net's evaluator: IoU and accuracy by class, np.nan_to_num, then the mean: the never-seen,
    never-predicted "dog" counts as 0 in every mean it belongs to."""
    confusion = np.array([[8, 0, 0, 2],
                          [1, 5, 0, 0],
                          [0, 0, 0, 0],
                          [0, 0, 0, 4]])
    skip = segmentation_metrics(confusion, NAMES, unseen=[2, 3], absent_classes="skip")
    zero = segmentation_metrics(confusion, NAMES, unseen=[2, 3], absent_classes="zero")
    iou = {"background": 8 / (10 + 9 - 8), "cat": 5 / (6 + 5 - 5), "cow": 4 / (4 + 6 - 4)}
    assert skip["per_class_iou"]["dog"] is None and zero["per_class_iou"]["dog"] == 0.0
    assert skip["unseen_miou"] == pytest.approx(100 * iou["cow"], abs=1e-3)
    assert zero["unseen_miou"] == pytest.approx(100 * iou["cow"] / 2, abs=1e-3)
    assert skip["miou"] == pytest.approx(100 * sum(iou.values()) / 3, abs=1e-3)
    assert zero["miou"] == pytest.approx(100 * sum(iou.values()) / 4, abs=1e-3)
    assert zero["seen_miou"] == skip["seen_miou"] == pytest.approx(100 * (iou["background"] + iou["cat"]) / 2,
                                                                   abs=1e-3)
    accuracy = {"background": 8 / 10, "cat": 5 / 6, "cow": 4 / 4}
    assert skip["mean_acc"] == pytest.approx(100 * sum(accuracy.values()) / 3, abs=1e-3)
    assert zero["mean_acc"] == pytest.approx(100 * sum(accuracy.values()) / 4, abs=1e-3)
    assert zero["unseen_mean_acc"] == pytest.approx(100 * 1.0 / 2, abs=1e-3)
    unseen_zero = iou["cow"] / 2
    seen = (iou["background"] + iou["cat"]) / 2
    assert zero["hiou"] == pytest.approx(100 * 2 * seen * unseen_zero / (seen + unseen_zero), abs=1e-3)
    # Pixel accuracies do not depend on the convention.
    assert zero["pixel_acc"] == skip["pixel_acc"] == pytest.approx(100 * 17 / 20, abs=1e-3)


def test_harmonic_mean():
    assert harmonic_mean(0.8, 0.4) == pytest.approx(2 * 0.8 * 0.4 / 1.2)
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert math.isnan(harmonic_mean(float("nan"), 0.5))


def test_confusion_csv_has_the_bytes_pandas_writes(tmp_path):
    # Names with a comma and a quote, which CSV must quote; pandas is the reference the files were written with.
    names = ["background", "dining, table", 'say "cheese"']
    confusion = np.array([[5, 0, 2], [1, 7, 0], [0, 3, 123456789012]], dtype=np.int64)
    write_confusion_csv(tmp_path / "ours.csv", confusion, names)
    frame = pd.DataFrame(confusion, index=names, columns=names)
    frame.index.name = "ground_truth"
    frame.to_csv(tmp_path / "pandas.csv")
    assert (tmp_path / "ours.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
    read = pd.read_csv(tmp_path / "ours.csv", index_col="ground_truth")
    assert read.index.tolist() == names and read.columns.tolist() == names
    assert np.array_equal(read.to_numpy(), confusion)
