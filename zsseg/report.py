"""Tables and figures of a run and of the K grid: every method of ``zsseg.methods``, in its order, under
its name; round curves; qualitative grids of val predictions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from zsseg.dense_prediction import predict  # noqa: E402
from zsseg.config import Params  # noqa: E402
from zsseg.datasets.folder import ClassSplit, FolderDataset  # noqa: E402
from zsseg.encoder_maps import shared_maps  # noqa: E402
from zsseg.feature_extraction import SplitBatch, split_features  # noqa: E402
from zsseg.methods import METHODS, Result, ceiling, final_results, proposed, results, round_curve  # noqa: E402
from zsseg.network import NETWORK_FILE, load_network  # noqa: E402
from zsseg.pipeline import grid_cell  # noqa: E402
from zsseg.labels import IGNORE_INDEX  # noqa: E402

SUMMARY_COLUMNS = ("round", "pixel_acc", "mean_acc", "miou", "seen_miou", "unseen_miou", "hiou", "mined_classes")
# Counts, not percentages: printed as integers (a column with a missing value is float in pandas).
INTEGER_COLUMNS = ("k", "seed", "round", "mined_classes", "n", "pseudo_features")
# Words, aligned left in markdown; every other column holds numbers, even when already formatted.
TEXT_COLUMNS = ("method", "comparison", "metric", "provenance", "value", "class", "most_common_other")


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


def precision_table(precision: pd.DataFrame, metrics_directory: str | Path, rounds: Sequence[int]) -> pd.DataFrame:
    """The proposed method's mining, per round and unseen class: its pseudo-features, the share in mixed blocks,
    the precision of the rest and the class they are most often instead (the mining_precision stage's), and the
    class's val IoU after the round trained on them. A class the round did not mine has 0 pseudo-features."""
    method = proposed()
    mined = precision[precision["method"] == method.name].set_index(["round", "class"])
    rows = []
    for result in results(list(rounds)):
        if result.method != method:
            continue
        metrics = _metrics(metrics_directory, result.metrics)
        for name in metrics["unseen_classes"]:
            found = mined.loc[(result.round, name)] if (result.round, name) in mined.index else None
            rows.append({"round": result.round, "class": name,
                         "pseudo_features": 0 if found is None else int(found["pseudo_features"]),
                         **{column: np.nan if found is None else float(found[column])
                            for column in ("mixed_share", "precision")},
                         "most_common_other": "" if found is None or pd.isna(found["most_common_other"])
                         else str(found["most_common_other"]),
                         "iou": metrics["per_class_iou"].get(name, np.nan)})
    return pd.DataFrame(rows, columns=["round", "class", "pseudo_features", "mixed_share", "precision",
                                       "most_common_other", "iou"])


def plot_mining_precision(table: pd.DataFrame, path: str | Path) -> matplotlib.figure.Figure:
    """Two heatmaps over the proposed method's rounds, one row per unseen class: the precision of its
    pseudo-features outside mixed blocks (annotated with their count) and its val IoU after that round."""
    precision = table.pivot_table(index="class", columns="round", values="precision", aggfunc="first", sort=False,
                                  dropna=False)
    counts = table.pivot_table(index="class", columns="round", values="pseudo_features", aggfunc="first",
                               sort=False)
    iou = table.pivot_table(index="class", columns="round", values="iou", aggfunc="first", sort=False)
    figure, axes = plt.subplots(1, 2, figsize=(2.2 * precision.shape[1] + 5, 0.5 * precision.shape[0] + 1.8),
                                layout="constrained")
    for axis, grid, title in ((axes[0], precision, "pseudo-feature precision (%), count"),
                              (axes[1], iou, "val IoU (%) after the round")):
        values = grid.reindex(index=precision.index, columns=precision.columns).to_numpy(dtype=float)
        axis.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
        axis.set_xticks(range(values.shape[1]), [f"round {r}" for r in precision.columns], fontsize=8)
        axis.set_yticks(range(values.shape[0]), list(precision.index) if axis is axes[0] else [], fontsize=8)
        for (row, column), value in np.ndenumerate(values):
            count = int(counts.iloc[row, column])
            text = (f"{value:.0f}" if not np.isnan(value) else "not mined") + (
                f"\n{count}" if axis is axes[0] and count else "")
            axis.text(column, row, text, ha="center", va="center", fontsize=8,
                      color="white" if np.isnan(value) or value < 60 else "black")
        axis.set_title(title, fontsize=9)
    figure.suptitle(f"{proposed().name}: what each round mined (diagnostic, from the ceiling's labels)", fontsize=9)
    return save_figure(figure, path)


def _cell(value: object, column: str) -> str:
    if isinstance(value, str):
        return value
    if pd.isna(value):
        return "n/a"
    return str(int(value)) if column in INTEGER_COLUMNS else f"{value:.2f}"


def markdown_table(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    """Numbers to two decimals, counts as integers, missing values as n/a, text as it is."""
    columns = list(columns or frame.columns)
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---" if c in TEXT_COLUMNS else "---:" for c in columns) + "|"]
    lines += ["| " + " | ".join(_cell(row[c], c) for c in columns) + " |" for _, row in frame.iterrows()]
    return "\n".join(lines) + "\n"


# Every figure is saved at FIGURE_DPI and draws no text smaller than SMALLEST_TEXT_PT: at its natural size
# that is 8 pt x 110 / 72 = 12.2 px, so a viewer may shrink a figure to 57% of its width before its smallest
# text falls under 7 px (tests/test_report_figures.py checks the sizes, tests/test_pipeline.py the report's).
FIGURE_DPI = 110
SMALLEST_TEXT_PT = 8


def save_figure(figure: matplotlib.figure.Figure, path: str | Path) -> matplotlib.figure.Figure:
    """Writes the figure's PNG and closes it in pyplot; returns it, so that tests can draw it again and
    measure where its texts landed."""
    figure.savefig(path, dpi=FIGURE_DPI)
    plt.close(figure)
    return figure


def plot_rounds(frame: pd.DataFrame, path: str | Path) -> matplotlib.figure.Figure:
    figure, axis = plt.subplots(figsize=(5, 3.5))
    for column, label in (("unseen_miou", "unseen mIoU"), ("seen_miou", "seen mIoU"), ("hiou", "hIoU")):
        axis.plot(frame["round"], frame[column], marker="o", label=label)
    axis.set_xlabel("round")
    axis.set_ylabel("%")
    axis.set_xticks(frame["round"])
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    return save_figure(figure, path)


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


def grid_features(params: Params, backbone: Path, encoder: Path, dataset: FolderDataset,
                  device: torch.device) -> tuple[list[SplitBatch], list[np.ndarray]]:
    """The network's features of the first ``report.grid_images`` val images (for ``prediction_grid``), and
    those images."""
    network, _ = load_network(backbone / NETWORK_FILE, device)
    ids = dataset.ids("val")[:params.report.grid_images]
    batches = list(split_features(network, dataset, "val", params.features.batch_size, device,
                                  params.backbone.mixed_precision, shared_maps(encoder, params.backbone), ids=ids))
    return batches, [dataset.load_image(image_id) for image_id in ids]


def prediction_grid(batches: Sequence[SplitBatch], images: Sequence[np.ndarray],
                    classifiers: dict[str, torch.nn.Module], class_split: ClassSplit, device: torch.device,
                    path: str | Path) -> matplotlib.figure.Figure:
    """Rows: the images of ``batches``; columns: image, ground truth, then each classifier's prediction (titled
    by its key, which must fit a panel's width: ``result_title``), beside a legend of the classes shown."""
    labels = [label for batch in batches for label in batch.labels]
    palette = class_palette(class_split.num_classes)
    predictions = {r: [p.numpy() for batch in batches for p in predict(batch, classifier, device)]
                   for r, classifier in classifiers.items()}
    titles = ["image", "ground truth", *classifiers]
    present = sorted(set().union(*(np.unique(label) for label in labels)) - {IGNORE_INDEX}
                     | set().union(*(np.unique(p) for per_round in predictions.values() for p in per_round)))
    handles = [matplotlib.patches.Patch(color=palette[c] / 255.0,
                                        label=class_split.names[c] + (" (unseen)" if c in class_split.unseen else ""))
               for c in present]
    # Inches: an image panel, the tallest title above the panels, and a legend entry at 8 pt with a class name
    # of up to about 24 characters. The legend stands right of the panels, in as many columns as the classes
    # need beside them: the figure stays as short as its images, and a report shows it whole on a laptop's
    # screen (Snakemake's report centres a taller figure and its titles end up above the scrollable area).
    panel_size, entry_height, entry_width = 1.4, 0.2, 1.7
    title_height = 0.2 * max(title.count("\n") + 1 for title in titles)
    columns, rows = len(titles), len(labels)
    legend_columns = -(-len(handles) // max(1, int(panel_size * rows / entry_height)))
    figure, axes = plt.subplots(rows, columns, squeeze=False, layout="constrained",
                                figsize=(panel_size * columns + entry_width * legend_columns,
                                         panel_size * rows + title_height))
    for row in range(rows):
        panels = [images[row], palette[labels[row]], *(palette[predictions[r][row]] for r in classifiers)]
        for column, (panel, title) in enumerate(zip(panels, titles)):
            axis = axes[row][column]
            axis.imshow(panel, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(title, fontsize=8)
    figure.legend(handles=handles, loc="outside right upper", ncol=legend_columns, fontsize=8, frameon=False)
    return save_figure(figure, path)


def result_title(result: Result) -> str:
    """A result's column title in ``prediction_grid``: its method's short label, on a second line the round
    of a per-round method. The figure's caption lists each method's full name."""
    return result.method.label + (f"\nround {result.round}" if result.method.per_round else "")


# The seen and unseen pixel and mean accuracies are CaGNet's table's columns, beside mIoU and hIoU.
ACCURACIES = ("seen_pixel_acc", "unseen_pixel_acc", "seen_mean_acc", "unseen_mean_acc")
TABLE_COLUMNS = ("dataset", "k", "seed", "method", "round", "pixel_acc", "mean_acc", "seen_miou", "unseen_miou",
                 "miou", "hiou", "mined_classes", *ACCURACIES, "unseen_of_ceiling")
MEAN_METRICS = ("hiou", "unseen_miou", "seen_miou", "miou", "pixel_acc", *ACCURACIES, "unseen_of_ceiling")
PAIRED_METRICS = ("hiou", "unseen_miou")


def grid_table(grid_directory: str | Path, dataset: str, k_values: Sequence[int], seeds: Sequence[int],
               rounds: Sequence[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per (K, seed, result): every method, a per-round method once per round, with its unseen mIoU
    as a fraction of the ceiling's in the same cell (zero-shot methods). And, per the same rows, the IoU
    of each unseen class (a long table: k, seed, method, round, class, iou)."""
    rows, classes = [], []
    ceiling_metrics = ceiling().metrics
    for k in k_values:
        for seed in seeds:
            metrics_directory = grid_cell(grid_directory, k, seed) / "metrics"
            bound_metrics = _metrics(metrics_directory, ceiling_metrics)
            bound, unseen_names = bound_metrics["unseen_miou"], bound_metrics["unseen_classes"]
            for result in results(list(rounds)):
                metrics = _metrics(metrics_directory, result.metrics)
                fraction = (metrics["unseen_miou"] / bound if result.method.zero_shot and bound
                            and metrics["unseen_miou"] is not None else None)
                rows.append({"dataset": dataset, "k": k, "seed": seed, "method": result.method.name,
                             "round": result.round, **{key: metrics.get(key) for key in TABLE_COLUMNS[5:-1]},
                             "unseen_of_ceiling": fraction})
                classes += [{"k": k, "seed": seed, "method": result.method.name, "round": result.round,
                             "class": name, "iou": metrics["per_class_iou"][name]} for name in unseen_names]
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS)), pd.DataFrame(classes)


def final_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The paper's view: one row per method (and K, seed), a per-round method by its last round."""
    last = table["round"].max()
    per_round = [method.name for method in METHODS if method.per_round]
    keep = ~table["method"].isin(per_round) | (table["round"] == last)
    return table[keep].reset_index(drop=True)


def _method_order(frame: pd.DataFrame) -> pd.DataFrame:
    order = {method.name: index for index, method in enumerate(METHODS)}
    return frame.sort_values(["k", "method"], key=lambda column: column.map(order) if column.name == "method"
                             else column, kind="stable").reset_index(drop=True)


def mean_table(table: pd.DataFrame, classes: pd.DataFrame) -> pd.DataFrame:
    """Per (K, method), over the seeds: mean and standard deviation of each metric of the final result (over
    the seeds where it exists), n (the seeds with an hIoU), and the mean IoU of each unseen class (columns
    ``iou <class>``)."""
    final = final_rows(table)
    grouped = final.groupby(["k", "method"], sort=False)
    frame = grouped[list(MEAN_METRICS)].agg(["mean", "std"])
    frame.columns = [f"{metric}_{statistic}" for metric, statistic in frame.columns]
    # The seeds whose hIoU exists (a seed with no unseen IoU has none): what the mean and std are over.
    frame.insert(0, "n", grouped["hiou"].count())
    final_classes = classes.merge(final[["k", "seed", "method", "round"]], on=["k", "seed", "method", "round"])
    per_class = final_classes.pivot_table(index=["k", "method"], columns="class", values="iou", aggfunc="mean",
                                          sort=False)
    per_class.columns = [f"iou {name}" for name in per_class.columns]
    return _method_order(frame.join(per_class).reset_index())


def mean_and_t_interval(differences: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """The mean of paired differences and its t-interval at ``confidence`` (scipy): NaN bounds under two
    values, and the point itself when every difference is equal (no spread)."""
    from scipy import stats

    values = np.asarray(differences, dtype=np.float64)
    n = values.size
    mean = float(values.mean()) if n else float("nan")
    if n < 2:
        return mean, float("nan"), float("nan")
    spread = float(stats.sem(values))
    if spread == 0:
        return mean, mean, mean
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=spread)
    return mean, float(low), float(high)


def t_test_p_value(differences: Sequence[float]) -> float:
    """The two-sided p-value of a one-sample t-test that the mean of ``differences`` is 0 (scipy): NaN under
    two values; with no spread, 0 for a nonzero mean and 1 for a zero one (t is infinite or undefined)."""
    from scipy import stats

    values = np.asarray(differences, dtype=np.float64)
    if values.size < 2:
        return float("nan")
    if np.all(values == values[0]):
        return 0.0 if values[0] != 0 else 1.0
    return float(stats.ttest_1samp(values, 0.0).pvalue)


def holm_adjusted(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment over a family of p-values (NaN ones left out of the family and kept NaN):
    the i-th smallest of m becomes max over j <= i of min(1, (m - j + 1) p_(j)). Rejecting where the
    adjusted value is under alpha keeps the chance of any false rejection in the family under alpha."""
    values = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(values.shape, np.nan)
    present = np.flatnonzero(~np.isnan(values))
    order = present[np.argsort(values[present], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * values[index]))
        adjusted[index] = running
    return adjusted


def paired_table(table: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per K, the proposed method minus every other zero-shot method, seed by seed, in each of
    ``PAIRED_METRICS``: the mean difference, its t-interval at ``confidence`` (scipy), whether the interval
    excludes 0, the t-test's p-value and its Holm adjustment over every row of the table (the family a reader
    scans at once). Seeds pair the two methods: the same backbone, cache and round 0."""
    final = final_rows(table)
    others = [method.name for method in METHODS if method.zero_shot and not method.proposed]
    rows = []
    for k, cell in final.groupby("k", sort=True):
        by_method = {name: rows_.set_index("seed") for name, rows_ in cell.groupby("method")}
        mine = by_method[proposed().name]
        for other in others:
            for metric in PAIRED_METRICS:
                differences = (mine[metric] - by_method[other][metric]).dropna()
                n = len(differences)
                mean, low, high = mean_and_t_interval(differences, confidence)
                rows.append({"k": k, "comparison": f"{proposed().name} - {other}", "metric": metric, "n": n,
                             "mean_difference": mean, "ci_low": low, "ci_high": high,
                             "excludes_zero": bool(n >= 2 and (low > 0 or high < 0)),
                             "p_value": t_test_p_value(differences)})
    frame = pd.DataFrame(rows)
    frame["p_holm"] = holm_adjusted(frame["p_value"]) if len(frame) else []
    return frame


def _plus_minus(frame: pd.DataFrame, metric: str) -> pd.Series:
    """mean ± std; "± n/a" where one seed gives no spread (never "± 0.00", which would claim one)."""
    return frame.apply(lambda row: "n/a" if pd.isna(row[f"{metric}_mean"]) else
                       f"{row[f'{metric}_mean']:.2f} ± " + ("n/a" if pd.isna(row[f"{metric}_std"])
                                                            else f"{row[f'{metric}_std']:.2f}"),
                       axis=1)


def mean_views(means: pd.DataFrame, paired: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The mean ± std table, each K's unseen classes' mean IoU, and the paired intervals, as printable
    tables under their headings."""
    view = means[["k", "method", "n"]].copy()
    for metric in ("hiou", "unseen_miou", "seen_miou"):
        view[metric] = _plus_minus(means, metric)
    view["unseen_of_ceiling"] = means["unseen_of_ceiling_mean"].map(
        lambda value: "n/a" if pd.isna(value) else f"{value:.2f}")
    accuracy = means[["k", "method", "n"]].copy()
    for metric in ACCURACIES:
        accuracy[metric] = _plus_minus(means, metric)
    views = [("Mean ± standard deviation over the seeds", view),
             ("Pixel and mean accuracy, seen and unseen classes: mean ± standard deviation over the seeds", accuracy)]
    class_columns = [column for column in means.columns if column.startswith("iou ")]
    for k, rows in means.groupby("k", sort=True):
        present = [column for column in class_columns if rows[column].notna().any()]
        classes = rows[["method", *present]].copy()
        classes[present] = classes[present].map(lambda value: "n/a" if pd.isna(value) else f"{value:.2f}")
        views.append((f"Unseen classes at K = {k}: mean IoU over the seeds", classes))
    intervals = paired[["k", "comparison", "metric", "n"]].copy()
    intervals["mean difference"] = paired["mean_difference"].map(lambda value: f"{value:+.2f}")
    intervals["95% t-interval"] = paired.apply(
        lambda row: "n/a" if pd.isna(row["ci_low"]) else f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}]", axis=1)
    intervals["excludes 0"] = paired["excludes_zero"].map({True: "yes", False: "no"})
    intervals["p (Holm)"] = paired["p_holm"].map(lambda value: "n/a" if pd.isna(value) else f"{value:.3f}")
    views.append(("Paired differences, seed by seed", intervals))
    return views


# dataset.background as every report and table title states it: the two protocols' numbers are not comparable
# (CaGNet's README), and a table must not be taken for the other's.
PROTOCOLS = {"include": "background as a seen class (ZS3Net protocol)",
             "ignore": "background ignored (SPNet/CaGNet protocol)"}


def intervals_note(seeds: Sequence[int]) -> str:
    """What the spread and the intervals over the seeds measure, and how far to trust them."""
    return (f"Every seed trains on the same images and is scored on the same val and dev images: the standard "
            f"deviations and intervals measure how results move with training randomness (initialisations, "
            f"sampling, batch order), not with the choice of images. With n = {len(seeds)} seeds a t-interval "
            f"has {len(seeds) - 1} degree{'s' if len(seeds) != 2 else ''} of freedom. Each 95% interval holds "
            f"on its own; the table shows many at once, so read 'excludes 0' with the Holm-adjusted p-value "
            f"beside it, which accounts for every comparison of the table together.")


def backbones_note(backbone_per_seed: bool, seeds: list[int]) -> str:
    """Which backbones the grid's cells used (table.backbone_per_seed), and so what its spread over the seeds
    measures."""
    if backbone_per_seed:
        return ("Backbones: one per cell (table.backbone_per_seed: true); the spread over the seeds includes the "
                "backbone's training noise.")
    return (f"Backbones: one per K, trained with seed {seeds[0]} and shared by every seed with its feature cache "
            f"(table.backbone_per_seed: false); the spread over the seeds measures the generator, the classifier "
            f"and the mining, not the backbone's training noise.")


def provenance_view(provenance: Mapping[str, object]) -> tuple[str, pd.DataFrame]:
    """The machine and the versions (zsseg.provenance) as a table under its heading."""
    return ("Provenance: the machine that wrote this page (under DVC, every stage's) and the versions that set "
            "the last digits", pd.DataFrame({"provenance": list(provenance),
                                              "value": [str(value) for value in provenance.values()]}))


def views_markdown(views: list[tuple[str, pd.DataFrame]]) -> str:
    return "\n".join(f"## {heading}\n\n" + markdown_table(frame) for heading, frame in views)


def views_html(title: str, views: list[tuple[str, pd.DataFrame]], note: str = "") -> str:
    """A page of tables under a title and a note, which the Snakemake report shows as it is."""
    style = ("body{font-family:sans-serif;font-size:13px;margin:1em}table{border-collapse:collapse;margin-bottom:"
             "1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}")
    body = "".join(f"<h3>{heading}</h3>" + frame.to_html(index=False, na_rep="n/a", float_format="%.2f")
                   for heading, frame in views)
    paragraph = f"<p>{note}</p>" if note else ""
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{style}</style></head><body><h2>{title}</h2>{paragraph}{body}</body></html>\n"


def grid_markdown(table: pd.DataFrame) -> str:
    return markdown_table(table, ["k", "seed", "method", "round", "pixel_acc", "seen_miou", "unseen_miou", "miou",
                                  "hiou", "mined_classes"])


def plot_grid_rounds(table: pd.DataFrame, path: str | Path) -> matplotlib.figure.Figure:
    """hIoU and unseen mIoU against round along the proposed method's rounds, one line per K (mean over
    the seeds, their standard deviation as error bars)."""
    rounds = sorted(r for r in table["round"].unique() if r > 0)
    steps = {(result.method.name, result.round) for result in round_curve(rounds)}
    curve = table[[(method, r) in steps for method, r in zip(table["method"], table["round"])]]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for axis, column, label in ((axes[0], "hiou", "hIoU"), (axes[1], "unseen_miou", "unseen mIoU")):
        for k, rows in curve.groupby("k"):
            summary = rows.groupby("round")[column].agg(["mean", "std"]).fillna(0)
            axis.errorbar(summary.index, summary["mean"], yerr=summary["std"], marker="o", capsize=3,
                          label=f"K = {k}")
        axis.set_xlabel("round")
        axis.set_ylabel(f"{label} (%)")
        axis.set_xticks(sorted(curve["round"].unique()))
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_grid_methods(means: pd.DataFrame, path: str | Path) -> matplotlib.figure.Figure:
    """hIoU and unseen mIoU against K, one line per zero-shot method (mean over seeds, std as error bars),
    and the supervised ceiling as a dashed line: it uses unseen labels. The legend under both panels names
    every method in full, where it hides no line."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    for axis, metric, label in ((axes[0], "hiou", "hIoU"), (axes[1], "unseen_miou", "unseen mIoU")):
        for method in METHODS:
            rows = means[means["method"] == method.name].sort_values("k")
            if method.zero_shot:
                axis.errorbar(rows["k"], rows[f"{metric}_mean"], yerr=rows[f"{metric}_std"].fillna(0), marker="o",
                              capsize=3, label=method.name)
            else:
                axis.plot(rows["k"], rows[f"{metric}_mean"], "k--", label=method.name)
        axis.set_xlabel("K (unseen classes)")
        axis.set_ylabel(f"{label} (%)")
        axis.set_xticks(sorted(means["k"].unique()))
        axis.grid(alpha=0.3)
    # In table order: matplotlib lists the ceiling's plain line before every error bar.
    handles = {label: handle for handle, label in zip(*axes[0].get_legend_handles_labels())}
    names = [method.name for method in METHODS if method.name in handles]
    figure.legend([handles[name] for name in names], names, loc="outside lower center", ncol=3, fontsize=8,
                  frameon=False)
    return save_figure(figure, path)


def plot_unseen_classes(classes: pd.DataFrame, k: int, path: str | Path) -> matplotlib.figure.Figure:
    """A heatmap of each unseen class's IoU (mean over the seeds) along the proposed method's rounds, at K."""
    rounds = sorted(r for r in classes["round"].unique() if r > 0)
    steps = {(result.method.name, result.round) for result in round_curve(rounds)}
    on_curve = np.array([(m, r) in steps for m, r in zip(classes["method"], classes["round"])], dtype=bool)
    curve = classes[(classes["k"] == k).to_numpy() & on_curve]
    grid = curve.pivot_table(index="class", columns="round", values="iou", aggfunc="mean", sort=False)
    figure, axis = plt.subplots(figsize=(1.1 * grid.shape[1] + 3, 0.45 * grid.shape[0] + 1.5))
    image = axis.imshow(grid.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    axis.set_xticks(range(grid.shape[1]), [f"round {r}" for r in grid.columns])
    axis.set_yticks(range(grid.shape[0]), list(grid.index))
    for (row, column), value in np.ndenumerate(grid.to_numpy(dtype=float)):
        if not np.isnan(value):
            axis.text(column, row, f"{value:.0f}", ha="center", va="center", color="white" if value < 60 else "black",
                      fontsize=8)
    axis.set_title(f"Unseen class IoU (%), K = {k}, {proposed().name}", fontsize=9)
    figure.colorbar(image, ax=axis, fraction=0.04)
    figure.tight_layout()
    return save_figure(figure, path)
