"""The pseudo-feature precision diagnostic against labels counted by hand, and its report table."""

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import write_caches_by_hand
from zsseg.mining_precision import MIXED_BLOCK, class_precision, mining_precision, pool_truth
from zsseg.pseudo_features import PSEUDO_FEATURES_FILE
from zsseg.report import precision_table

NAMES = ["background", "a", "b", "c"]


def test_precision_counts_by_hand():
    # Rows 0..7 of the pool and their true labels; class 2 mined at rows 0, 1, 2, 3, 5, class 3 at 6, 7.
    truth = np.array([2, 2, 1, MIXED_BLOCK, 0, 2, 3, 1], np.uint8)
    classes = np.array([2, 2, 2, 2, 2, 3, 3])
    rows = np.array([0, 1, 2, 3, 5, 6, 7])
    by_class = {row["class"]: row for row in class_precision(classes, rows, truth, NAMES)}
    # b: 5 pseudo-features, 1 in a mixed block (20 %); of the other 4, 3 are b (75 %), 1 is a (100 % of wrong).
    assert by_class["b"] == {"class": "b", "pseudo_features": 5, "mixed_share": 20.0, "precision": 75.0,
                             "most_common_other": "a", "other_share": 100.0}
    assert by_class["c"] == {"class": "c", "pseudo_features": 2, "mixed_share": 0.0, "precision": 50.0,
                             "most_common_other": "a", "other_share": 100.0}
    perfect = class_precision(np.array([2]), np.array([0]), truth, NAMES)[0]
    assert perfect["precision"] == 100.0 and perfect["most_common_other"] == "" and np.isnan(perfect["other_share"])


def test_a_round_s_pseudo_features_are_judged_by_the_ceiling_labels_and_the_labelled_cache(tmp_path):
    images = [("labelled", np.zeros((1, 2, 2), np.float32), np.array([[1, 2]], np.uint8)),
              ("pool", np.zeros((1, 3, 2), np.float32), None)]
    caches = write_caches_by_hand(tmp_path / "features", images, NAMES, [2, 3])
    labels = tmp_path / "ceiling_labels.h5"
    with h5py.File(labels, "w") as handle:
        handle.create_dataset("feature_labels", data=np.array([2, 3, MIXED_BLOCK], np.uint8))
        handle.attrs["ids"] = json.dumps(["pool"])
    # The all_images pool: pool.h5's 3 rows, then labelled.h5's 2.
    assert pool_truth(caches, labels, "all_images").tolist() == [2, 3, MIXED_BLOCK, 1, 2]
    run = tmp_path / "run"
    (run / "rounds" / "1").mkdir(parents=True)
    with h5py.File(run / "rounds" / "1" / PSEUDO_FEATURES_FILE, "w") as handle:
        handle.create_dataset("classes", data=np.array([2, 2, 2, 3]))
        handle.create_dataset("rows", data=np.array([0, 4, 3, 1]))
        handle.attrs["mining_pool"] = json.dumps("all_images")
    frame = mining_precision(run, caches, labels, [1])
    assert frame[["method", "round", "class", "pseudo_features", "precision"]].values.tolist() == [
        ["recursive ZS-MMD", 1, "b", 3, pytest.approx(200 / 3)], ["recursive ZS-MMD", 1, "c", 1, 100.0]]


def test_the_report_table_sets_each_class_beside_its_iou_and_names_the_unmined(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    for round_index, iou in ((1, {"b": 40.0, "c": 10.0}), (2, {"b": 45.0, "c": 12.0})):
        (metrics / f"round_{round_index}.json").write_text(json.dumps({"unseen_classes": ["b", "c"],
                                                                      "per_class_iou": iou}))
    precision = pd.DataFrame([
        {"method": "recursive ZS-MMD", "round": 1, "class": "b", "pseudo_features": 90, "mixed_share": 10.0,
         "precision": 80.0, "most_common_other": "a", "other_share": 100.0},
        {"method": "recursive ZS-MMD", "round": 2, "class": "b", "pseudo_features": 100, "mixed_share": 0.0,
         "precision": 70.0, "most_common_other": "c", "other_share": 60.0},
        {"method": "recursion without pseudo-features", "round": 2, "class": "c", "pseudo_features": 5,
         "mixed_share": 0.0, "precision": 1.0, "most_common_other": "b", "other_share": 100.0}])
    table = precision_table(precision, metrics, [1, 2])
    assert table.to_dict("records")[:2] == [
        {"round": 1, "class": "b", "pseudo_features": 90, "mixed_share": 10.0, "precision": 80.0,
         "most_common_other": "a", "iou": 40.0},
        {"round": 1, "class": "c", "pseudo_features": 0, "mixed_share": pytest.approx(np.nan, nan_ok=True),
         "precision": pytest.approx(np.nan, nan_ok=True), "most_common_other": "", "iou": 10.0}]
    # Another method's mining of c in round 2 is not the proposed method's.
    assert table.iloc[3].to_dict()["pseudo_features"] == 0 and table.iloc[2]["precision"] == 70.0
