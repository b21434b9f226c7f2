"""Training curves of a run, from the logs its training stages write: the backbone's loss per epoch, each
generator's seen and pseudo MMD per logged step, and each classifier's loss per epoch.

They are written as small CSV files that git versions (DVC plots, ``dvc plots diff`` across commits and
experiments) and drawn as one figure for the Snakemake report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from zsseg.classifier import LOG_FILE  # noqa: E402
from zsseg.methods import results  # noqa: E402
from zsseg.report import SMALLEST_TEXT_PT, save_figure  # noqa: E402

BACKBONE_CURVE = "backbone_loss.csv"
GENERATOR_CURVES = "generator"      # one CSV per result whose stage trained a generator
CLASSIFIER_CURVES = "classifier"    # one CSV per result
FIGURE_INCHES = (15, 6.5)   # the legends of up to a dozen results go under their panels
GENERATOR_COLUMNS = ("step", "seen_mmd", "pseudo_mmd")


def training_curves(run: str | Path, backbone: str | Path, rounds: Sequence[int]) -> dict[str, pd.DataFrame]:
    """{relative CSV path: curve} of the backbone in ``backbone`` and of every result of every method in the
    run directory ``run``. A backbone loaded from a checkpoint has no epochs, so no curve."""
    curves = {}
    # The backbone stage writes its log under a classifier's log name (a real run's curves test that it does).
    epochs = [entry for entry in json.loads((Path(backbone) / LOG_FILE).read_text()) if "epoch" in entry]
    if epochs:
        curves[BACKBONE_CURVE] = pd.DataFrame(epochs, columns=["epoch", "loss"])
    for result in results(list(rounds)):
        log = json.loads((Path(run) / result.directory / LOG_FILE).read_text())
        if "generator" in log:
            curves[f"{GENERATOR_CURVES}/{result.metrics}.csv"] = pd.DataFrame(log["generator"],
                                                                               columns=list(GENERATOR_COLUMNS))
        curves[f"{CLASSIFIER_CURVES}/{result.metrics}.csv"] = pd.DataFrame(log["classifier"], columns=["epoch", "loss"])
    return curves


def write_curves(curves: Mapping[str, pd.DataFrame], directory: Path) -> None:
    for name, frame in curves.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(directory / name, index=False)


def plot_training_curves(curves: Mapping[str, pd.DataFrame], path: str | Path) -> plt.Figure:
    """Three panels: the backbone's loss, every generator's seen (solid) and pseudo (dashed) MMD, every
    classifier's loss; a line per result, named by its metrics stem (round_1, self_training, ...) in a legend
    under its panel."""
    figure, axes = plt.subplots(1, 3, figsize=FIGURE_INCHES, layout="constrained")
    backbone_axis, generator_axis, classifier_axis = axes
    if BACKBONE_CURVE in curves:
        frame = curves[BACKBONE_CURVE]
        backbone_axis.plot(frame["epoch"], frame["loss"], marker="o")
    else:
        backbone_axis.text(0.5, 0.5, "loaded from a checkpoint:\nno training", ha="center", va="center",
                           transform=backbone_axis.transAxes)
    backbone_axis.set(title="Backbone: loss per epoch", xlabel="epoch", ylabel="cross-entropy")
    for name, frame in curves.items():
        stem = Path(name).stem
        if name.startswith(f"{GENERATOR_CURVES}/"):
            line, = generator_axis.plot(frame["step"], frame["seen_mmd"], label=stem)
            if frame["pseudo_mmd"].any():
                generator_axis.plot(frame["step"], frame["pseudo_mmd"], "--", color=line.get_color())
        elif name.startswith(f"{CLASSIFIER_CURVES}/"):
            classifier_axis.plot(frame["epoch"], frame["loss"], label=stem)
    generator_axis.set(title="Generator: seen MMD (solid), pseudo MMD (dashed)", xlabel="logged step", ylabel="MMD")
    classifier_axis.set(title="Classifier: loss per epoch", xlabel="epoch", ylabel="cross-entropy")
    for axis in axes:
        axis.grid(alpha=0.3)
    for axis in (generator_axis, classifier_axis):
        if axis.lines:
            axis.legend(fontsize=SMALLEST_TEXT_PT, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2,
                        frameon=False)
    return save_figure(figure, path)
