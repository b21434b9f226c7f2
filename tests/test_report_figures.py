"""The figures of the report and the grid (zsseg/report.py), drawn from small hand-made inputs of the real
shape (every method, K up to 10, PASCAL VOC's class names): every text the renderer draws lies inside the
figure, overlaps no other text and is at least SMALLEST_TEXT_PT large."""

import itertools
from unittest import mock

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from zsseg.datasets.folder import ClassSplit
from zsseg.feature_extraction import SplitBatch
from zsseg.methods import final_results, results
from zsseg.report import (ACCURACIES, FIGURE_DPI, SMALLEST_TEXT_PT, mean_table, plot_grid_methods, plot_grid_rounds,
                          plot_rounds, plot_unseen_classes, prediction_grid, result_title)

VOC_NAMES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
             "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
             "tvmonitor")
K_VALUES, SEEDS, ROUNDS = (2, 4, 6, 8, 10), (0, 1, 2), [1, 2, 3]


def drawn_texts(figure: matplotlib.figure.Figure) -> list[tuple[Text, Bbox]]:
    """Every non-empty text that drawing the figure at its saved resolution renders, with its extent in
    pixels. Recorded as drawn: an axis keeps labels of ticks outside its view, never drawn."""
    drawn = []
    draw = Text.draw

    def recording_draw(text, renderer):
        draw(text, renderer)
        if text.get_visible() and text.get_text().strip():
            drawn.append(text)

    figure.set_dpi(FIGURE_DPI)
    canvas = FigureCanvasAgg(figure)  # closed in pyplot, the figure has lost its own
    with mock.patch.object(Text, "draw", recording_draw):
        canvas.draw()
    renderer = canvas.get_renderer()
    return [(text, text.get_window_extent(renderer)) for text in drawn]


def layout_faults(figure: matplotlib.figure.Figure) -> list[str]:
    """Each pair of drawn texts whose extents overlap, and each text not wholly inside the figure."""
    boxes = drawn_texts(figure)
    faults = [f"{text.get_text()!r} runs past the figure's edge" for text, box in boxes
              if box.x0 < 0 or box.y0 < 0 or box.x1 > figure.bbox.x1 or box.y1 > figure.bbox.y1]
    for (first, first_box), (second, second_box) in itertools.combinations(boxes, 2):
        # Extents that only touch do not overlap.
        if min(first_box.x1, second_box.x1) > max(first_box.x0, second_box.x0) and \
                min(first_box.y1, second_box.y1) > max(first_box.y0, second_box.y0):
            faults.append(f"{first.get_text()!r} overlaps {second.get_text()!r}")
    return faults


def assert_readable(figure: matplotlib.figure.Figure) -> None:
    assert layout_faults(figure) == []
    small = [(text.get_text(), text.get_fontsize()) for text, _ in drawn_texts(figure)
             if text.get_fontsize() < SMALLEST_TEXT_PT]
    assert small == [], f"texts under {SMALLEST_TEXT_PT} pt"


def test_the_check_reports_the_old_column_titles_as_overlapping():
    """The control: the grid's prediction figure as it was, full method names over 1.7-inch panels at 8 pt."""
    titles = ["image", "ground truth", *(result.method.name + (f" round {result.round}" if result.method.per_round
                                                                else "") for result in final_results(ROUNDS))]
    figure, axes = plt.subplots(1, len(titles), figsize=(1.7 * len(titles), 2.6))
    for axis, title in zip(axes, titles):
        axis.imshow(np.zeros((8, 8)))
        axis.set_title(title, fontsize=8)
    figure.tight_layout()
    faults = layout_faults(figure)
    plt.close(figure)
    assert "'recursion without pseudo-features round 3' overlaps 'recursion with pseudo-labelled classifier " \
           "round 3'" in faults
    assert "'recursion with pseudo-labelled classifier round 3' overlaps 'supervised ceiling (uses unseen " \
           "labels)'" in faults


def test_the_check_reports_a_text_past_the_figures_edge():
    figure = plt.figure(figsize=(3, 2))
    figure.text(0.9, 0.5, "supervised ceiling (uses unseen labels)")
    faults = layout_faults(figure)
    plt.close(figure)
    assert faults == ["'supervised ceiling (uses unseen labels)' runs past the figure's edge"]


@pytest.fixture
def grid_rows() -> tuple[pd.DataFrame, pd.DataFrame]:
    """``grid_table``'s two tables by hand: every result of every method at every K and seed, and each unseen
    class's IoU (the last K classes of VOC's order are unseen)."""
    random = np.random.default_rng(0)
    rows, classes = [], []
    for k, seed, result in itertools.product(K_VALUES, SEEDS, results(ROUNDS)):
        hiou, unseen = random.uniform(20, 80, size=2)
        rows.append({"k": k, "seed": seed, "method": result.method.name, "round": result.round, "hiou": hiou,
                     "unseen_miou": unseen, "seen_miou": random.uniform(60, 80), "miou": random.uniform(40, 70),
                     "pixel_acc": random.uniform(80, 95), "unseen_of_ceiling": random.uniform(0, 1),
                     **{accuracy: random.uniform(40, 95) for accuracy in ACCURACIES}})
        classes += [{"k": k, "seed": seed, "method": result.method.name, "round": result.round, "class": name,
                     "iou": random.uniform(0, 100)} for name in VOC_NAMES[-k:]]
    return pd.DataFrame(rows), pd.DataFrame(classes)


def test_the_single_runs_round_curve_is_readable(tmp_path):
    frame = pd.DataFrame({"round": [0, 1, 2, 3], "unseen_miou": [59.5, 70.8, 72.7, 73.2],
                          "seen_miou": [75.0, 77.1, 77.9, 78.3], "hiou": [66.4, 73.8, 75.2, 75.7]})
    assert_readable(plot_rounds(frame, tmp_path / "rounds.png"))


def test_the_grids_round_and_method_curves_are_readable(tmp_path, grid_rows):
    table, classes = grid_rows
    assert_readable(plot_grid_rounds(table, tmp_path / "rounds.png"))
    assert_readable(plot_grid_methods(mean_table(table, classes), tmp_path / "methods.png"))


@pytest.mark.parametrize("k", [2, 10])
def test_the_unseen_class_heatmap_is_readable(tmp_path, grid_rows, k):
    assert_readable(plot_unseen_classes(grid_rows[1], k, tmp_path / "unseen_classes.png"))


def prediction_inputs(count: int) -> tuple[list[SplitBatch], list[np.ndarray], ClassSplit]:
    """Random features of ``count`` 64 x 64 images whose labels hold every VOC class: the legend lists all 21,
    10 of them unseen."""
    torch.manual_seed(0)
    random = np.random.default_rng(0)
    labels = [random.integers(0, len(VOC_NAMES), size=(64, 64), dtype=np.uint8) for _ in range(count)]
    batch = SplitBatch([f"image_{index}" for index in range(count)], torch.randn(count, 8, 8, 16), labels,
                       [False] * count)
    pictures = [random.integers(0, 256, size=(64, 64, 3), dtype=np.uint8) for _ in range(count)]
    return [batch], pictures, ClassSplit(VOC_NAMES, tuple(range(len(VOC_NAMES) - 10, len(VOC_NAMES))))


@pytest.mark.parametrize("rows", [1, 6])
@pytest.mark.parametrize("titles", ["grid", "single run"])
def test_the_prediction_figures_are_readable(tmp_path, titles, rows):
    """The grid's figure titles every method's final result by ``result_title`` (stages/table.py); the single
    run's, the rounds (stages/report.py). Beside a single row of images, the legend takes several columns."""
    batches, images, class_split = prediction_inputs(rows)
    keys = ([result_title(result) for result in final_results(ROUNDS)] if titles == "grid"
            else [f"round {r}" for r in [0, *ROUNDS]])
    classifiers = {key: torch.nn.Linear(16, len(VOC_NAMES)) for key in keys}
    figure = prediction_grid(batches, images, classifiers, class_split, torch.device("cpu"),
                             tmp_path / "predictions.png")
    assert_readable(figure)
    assert len(figure.legends[0].get_texts()) == len(VOC_NAMES)


def test_the_training_curves_figure_is_readable_with_every_result(tmp_path):
    """Three recursive rounds: a classifier curve for each of the 12 results and two generator curves for most,
    in the legends of one figure (zsseg/curves.py)."""
    from zsseg.curves import plot_training_curves

    curves = {"backbone_loss.csv": pd.DataFrame({"epoch": range(6), "loss": np.linspace(0.9, 0.3, 6)})}
    for result in results(ROUNDS):
        curves[f"classifier/{result.metrics}.csv"] = pd.DataFrame({"epoch": range(15), "loss": np.linspace(1, .2, 15)})
        if result.method.key not in ("zs5net", "ceiling"):
            curves[f"generator/{result.metrics}.csv"] = pd.DataFrame(
                {"step": range(0, 400, 25), "seen_mmd": np.linspace(1.2, 0.4, 16),
                 "pseudo_mmd": np.linspace(0.9, 0.5, 16) * (result.round > 0)})
    assert_readable(plot_training_curves(curves, tmp_path / "training_curves.png"))
