"""Tables and figures of a run and of the K grid: every method of ``zsseg.methods``, in its order, under
its name; round curves; qualitative grids of val predictions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from zsseg.dense_prediction import predict  # noqa: E402
from zsseg.feature_cache import FeatureCache  # noqa: E402
from zsseg.methods import METHODS, final_results, results, round_curve  # noqa: E402
from zsseg.labels import IGNORE_INDEX  # noqa: E402

SUMMARY_COLUMNS = ("round", "pixel_acc", "mean_acc", "miou", "seen_miou", "unseen_miou", "hiou", "mined_classes")
# Counts, not percentages: printed as integers.
INTEGER_COLUMNS = ("k", "round", "mined_classes")


def _metrics(metrics_directory: str | Path, name: str) -> dict:
    return json.loads((Path(metrics_directory) / f"{name}.json").read_text())


def summary_table(metrics_directory: str | Path, rounds: Sequence[int]) -> pd.DataFrame:
    """One row per round of the round curve (round 0, then the recursive rounds)."""
    rows = [{"round": result.round, **{key: _metrics(metrics_directory, result.metrics).get(key)
                                       for key in SUMMARY_COLUMNS[1:]}} for result in round_curve(list(rounds))]
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def methods_table(metrics_directory: str | Path, rounds: Sequence[int]) -> pd.DataFrame:
    """One row per method; a per-round method by its last round."""
    rows = [{"method": result.method.name, "round": result.round,
             **{key: _metrics(metrics_directory, result.metrics).get(key) for key in SUMMARY_COLUMNS[1:]}}
            for result in final_results(list(rounds))]
    return pd.DataFrame(rows, columns=["method", *SUMMARY_COLUMNS])


def _cell(value: object, column: str) -> str:
    if column == "method":
        return str(value)
    if pd.isna(value):
        return "n/a"
    return str(int(value)) if column in INTEGER_COLUMNS else f"{value:.2f}"


def markdown_table(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    columns = list(columns or frame.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" if c == "method" else "---:" for c in columns) + "|"]
    lines += ["| " + " | ".join(_cell(row[c], c) for c in columns) + " |" for _, row in frame.iterrows()]
    return "\n".join(lines) + "\n"


def plot_rounds(frame: pd.DataFrame, path: str | Path) -> None:
    figure, axis = plt.subplots(figsize=(5, 3.5))
    for column, label in (("unseen_miou", "unseen mIoU"), ("seen_miou", "seen mIoU"), ("hiou", "hIoU")):
        axis.plot(frame["round"], frame[column], marker="o", label=label)
    axis.set_xlabel("round")
    axis.set_ylabel("%")
    axis.set_xticks(frame["round"])
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def class_palette(num_classes: int) -> np.ndarray:
    """The PASCAL VOC colour map (background black), extended as VOC does; ignore is white."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value, colour = index, [0, 0, 0]
        for shift in range(8):
            for channel in range(3):
                colour[channel] |= ((value >> channel) & 1) << (7 - shift)
            value >>= 3
        palette[index] = colour
    palette[IGNORE_INDEX] = 255
    return palette


def prediction_grid(cache: FeatureCache, images: Sequence[np.ndarray], classifiers: dict[str, torch.nn.Module],
                    count: int, device: torch.device, path: str | Path) -> None:
    """Rows: val images; columns: image, ground truth, then each classifier's prediction (titled by its key)."""
    batch = next(cache.batches(count))
    palette = class_palette(len(cache.class_names))
    predictions = {r: [p.numpy() for p in predict(batch, classifier, device)] for r, classifier in classifiers.items()}
    columns = 2 + len(classifiers)
    rows = len(batch.ids)
    figure, axes = plt.subplots(rows, columns, figsize=(1.7 * columns, 1.7 * rows + 0.9), squeeze=False)
    for row in range(rows):
        panels = [images[row], palette[batch.labels[row].numpy()]]
        panels += [palette[predictions[r][row]] for r in classifiers]
        titles = ["image", "ground truth", *classifiers]
        for column, (panel, title) in enumerate(zip(panels, titles)):
            axis = axes[row][column]
            axis.imshow(panel, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(title, fontsize=8)
    present = sorted(set().union(*(np.unique(label.numpy()) for label in batch.labels)) - {IGNORE_INDEX}
                     | set().union(*(np.unique(p) for per_round in predictions.values() for p in per_round)))
    handles = [matplotlib.patches.Patch(color=palette[c] / 255.0,
                                        label=cache.class_names[c] + (" (unseen)" if c in cache.unseen else ""))
               for c in present]
    figure.legend(handles=handles, loc="lower center", ncol=4, fontsize=7, frameon=False)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


TABLE_COLUMNS = ("dataset", "k", "method", "round", "pixel_acc", "mean_acc", "seen_miou", "unseen_miou", "miou",
                 "hiou", "mined_classes")


def grid_table(grid_directory: str | Path, dataset: str, k_values: Sequence[int],
               rounds: Sequence[int]) -> pd.DataFrame:
    """One row per (K, result): every method, a per-round method once per round."""
    rows = []
    for k in k_values:
        metrics_directory = Path(grid_directory) / f"k{k}" / "metrics"
        for result in results(list(rounds)):
            metrics = _metrics(metrics_directory, result.metrics)
            rows.append({"dataset": dataset, "k": k, "method": result.method.name, "round": result.round,
                         **{key: metrics.get(key) for key in TABLE_COLUMNS[4:]}})
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def final_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The paper's view: per K, one row per method, a per-round method by its last round."""
    last = table["round"].max()
    per_round = [method.name for method in METHODS if method.per_round]
    keep = ~table["method"].isin(per_round) | (table["round"] == last)
    return table[keep].reset_index(drop=True)


def grid_markdown(table: pd.DataFrame) -> str:
    return markdown_table(table, ["k", "method", "round", "pixel_acc", "seen_miou", "unseen_miou", "miou", "hiou",
                                  "mined_classes"])


def plot_grid_rounds(table: pd.DataFrame, path: str | Path) -> None:
    """hIoU and unseen mIoU against round along the round curve, one line per K."""
    rounds = sorted(r for r in table["round"].unique() if r > 0)
    steps = {(result.method.name, result.round) for result in round_curve(rounds)}
    curve = table[[(method, r) in steps for method, r in zip(table["method"], table["round"])]]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for axis, column, label in ((axes[0], "hiou", "hIoU"), (axes[1], "unseen_miou", "unseen mIoU")):
        for k, rows in curve.groupby("k"):
            axis.plot(rows["round"], rows[column], marker="o", label=f"K = {k}")
        axis.set_xlabel("round")
        axis.set_ylabel(f"{label} (%)")
        axis.set_xticks(sorted(curve["round"].unique()))
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_grid_methods(table: pd.DataFrame, path: str | Path) -> None:
    """Grouped bars: per K, the hIoU of each method (a per-round method by its last round), centred on K."""
    final = final_rows(table)
    k_values = sorted(final["k"].unique())
    names = [method.name for method in METHODS]
    width = 0.8 / len(names)
    figure, axis = plt.subplots(figsize=(1.4 * len(k_values) + 2, 3.5))
    for index, name in enumerate(names):
        values = [final[(final["k"] == k) & (final["method"] == name)]["hiou"].fillna(0).iloc[0] for k in k_values]
        axis.bar(np.arange(len(k_values)) + (index - (len(names) - 1) / 2) * width, values, width, label=name)
    axis.set_xticks(np.arange(len(k_values)), [f"K = {k}" for k in k_values])
    axis.set_ylabel("hIoU (%)")
    axis.legend(fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
