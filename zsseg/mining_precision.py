"""How many of each round's pseudo-features truly belong to their class: a diagnostic that trains nothing.

A round mines pseudo-features of unseen class u from pixels its previous classifier predicts as u. Where
those pixels truly belong to another class, the round feeds that error back to the generator, and the next
round mines it again (confirmation bias). Their truth is the ceiling's label file (``ceiling_labels.h5``):
the one file that holds the unseen labels of the training images, read by the ceiling and by this
report-side stage, never by a zero-shot stage. Each pseudo-feature names its row in the mining pool (pool.h5's
rows, then labelled.h5's), and a labelled image's rows carry their label in labelled.h5 itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from zsseg.ceiling import read_ceiling_labels
from zsseg.feature_cache import TrainingCaches
from zsseg.methods import results
from zsseg.pseudo_features import MINING_POOLS, PSEUDO_FEATURES_FILE

# The label of a cached pixel whose block has no majority label pure enough (zsseg/labels.py).
MIXED_BLOCK = 255
COLUMNS = ("method", "round", "class", "pseudo_features", "mixed_share", "precision", "most_common_other",
           "other_share")


def read_mining_precision(path: str | Path) -> pd.DataFrame:
    """The stage's CSV as written: only an empty cell is missing, so no class name reads as NaN ("NA", "null")."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def pool_truth(caches: TrainingCaches, labels_path: Path, pool: str) -> np.ndarray:
    """The true label of every row of the mining pool ``pool``, in its row order."""
    parts = []
    for cache in MINING_POOLS[pool](caches):
        if cache is caches.pool:
            parts.append(read_ceiling_labels(labels_path, caches.pool))
        else:
            with h5py.File(cache.path, "r") as handle:
                parts.append(handle["feature_labels"][:])
    return np.concatenate(parts)


def class_precision(classes: np.ndarray, rows: np.ndarray, truth: np.ndarray,
                    class_names: Sequence[str]) -> list[dict]:
    """Per mined class: its pseudo-features; the share (%) of them in mixed blocks (no label pure enough:
    object borders, neither right nor wrong); among the rest, the share (%) whose pixel truly is that class,
    and the other class most of the wrong ones are, with its share (%) of them."""
    found = []
    for u in np.unique(classes):
        labels = truth[rows[classes == u]]
        labelled = labels[labels != MIXED_BLOCK]
        wrong = labelled[labelled != u]
        values, counts = np.unique(wrong, return_counts=True)
        found.append({"class": class_names[u], "pseudo_features": int(labels.size),
                      "mixed_share": 100.0 * float(np.mean(labels == MIXED_BLOCK)),
                      "precision": 100.0 * float(np.mean(labelled == u)) if labelled.size else np.nan,
                      "most_common_other": class_names[int(values[np.argmax(counts)])] if wrong.size else "",
                      "other_share": 100.0 * float(np.max(counts)) / wrong.size if wrong.size else np.nan})
    return found


def mining_precision(run: Path, caches: TrainingCaches, labels_path: Path, rounds: list[int]) -> pd.DataFrame:
    """One row per (method, round, mined class) of every result that mined pseudo-features in ``run``."""
    truths: dict[str, np.ndarray] = {}
    rows = []
    for result in results(rounds):
        path = run / result.directory / PSEUDO_FEATURES_FILE
        if not path.is_file():
            continue
        with h5py.File(path, "r") as handle:
            classes, pixel_rows = handle["classes"][:], handle["rows"][:]
            pool = json.loads(handle.attrs["mining_pool"])
        if pool not in truths:
            truths[pool] = pool_truth(caches, labels_path, pool)
        for row in class_precision(classes, pixel_rows, truths[pool], caches.class_names):
            rows.append({"method": result.method.name, "round": result.round, **row})
    return pd.DataFrame(rows, columns=list(COLUMNS))
