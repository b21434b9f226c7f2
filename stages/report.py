"""Stage `report`: summary tables of the rounds and the methods, round and training curves, a prediction
grid and the machine's provenance.

The plot data (the tables as CSV and the training curves) goes to its own small directory, which git
versions beside the metrics, so that `dvc plots diff` compares commits and experiments on a fresh clone;
the figures go to the report directory, which DVC caches.
"""

import json
from pathlib import Path

from zsseg.classifier import load_classifier
from zsseg.atomic import atomic_path
from zsseg.curves import plot_training_curves, training_curves, write_curves
from zsseg.datasets.folder import FolderDataset
from zsseg.methods import round_curve
from zsseg.mining_precision import read_mining_precision
from zsseg.provenance import machine_provenance
from zsseg.report import (PROTOCOLS, grid_features, markdown_table, methods_table, plot_mining_precision, plot_rounds,
                          precision_table, prediction_grid, provenance_view, summary_table, views_markdown)
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "device", "dataset.name", "dataset.unseen", "dataset.background", "embed.source",
          "backbone", "features.batch_size", "recursion.rounds", "report")
ARGUMENTS = {"dataset": "directory written by the prepare stage",
             "backbone": "directory written by the backbone stage",
             "encoder": "encoder maps written by the encode stage",
             "metrics": "directory written by the evaluate stage",
             "mining_precision": ".csv written by the mining_precision stage",
             "run": "the run directory, which holds each method's output (zsseg/methods.py)",
             "output": "report directory to write",
             "plots": "plot data directory to write: rounds.csv, methods.csv and the training curves"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("report", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        params, args = stage.params, stage.args
        rounds = sorted(params.recursion.rounds)
        frame = summary_table(args.metrics, rounds)
        methods = methods_table(args.metrics, rounds)
        mining = precision_table(read_mining_precision(args.mining_precision),
                                 args.metrics, rounds)
        dataset = FolderDataset(args.dataset, params.dataset.background)
        class_split = dataset.class_split(params.dataset.unseen)
        batches, images = grid_features(params, Path(args.backbone), Path(args.encoder), dataset, stage.device)
        classifiers = {f"round {result.round}": load_classifier(Path(args.run) / result.directory)
                       for result in round_curve(rounds)}
        curves = training_curves(args.run, args.backbone, rounds)
        provenance = machine_provenance(params.threads, stage.device)
        with (atomic_path(args.output, directory=True) as directory,
              atomic_path(args.plots, directory=True) as plots_directory):
            frame.to_csv(plots_directory / "rounds.csv", index=False)
            methods.to_csv(plots_directory / "methods.csv", index=False)
            write_curves(curves, plots_directory)
            (directory / "summary.md").write_text(
                f"# Generalised zero-shot results per round ({params.dataset.name}, "
                f"{len(class_split.unseen)} unseen classes, {params.embed.source} embeddings; "
                f"{PROTOCOLS[params.dataset.background]})\n\n"
                + markdown_table(frame) + "\n## Methods\n\n" + markdown_table(methods) + "\n"
                + "## What each round mined (a diagnostic: the ceiling's unseen labels, read by no training stage)"
                + "\n\nPer unseen class: the pseudo-features the round mined; the share (%) in mixed blocks (object "
                + "borders, no label pure enough); of the rest, the share whose pixel truly is that class, and the "
                + "class most wrong ones are; the class's val IoU after the round.\n\n"
                + markdown_table(mining) + "\n"
                + views_markdown([provenance_view(provenance)]))
            (directory / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
            plot_rounds(frame, directory / "rounds.png")
            plot_mining_precision(mining, directory / "mining_precision.png")
            plot_training_curves(curves, directory / "training_curves.png")
            prediction_grid(batches, images, classifiers, class_split, stage.device, directory / "predictions.png")


if __name__ == "__main__":
    main()
