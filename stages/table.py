"""Stage `table`: the paper's table over the K x seed grid, every result of every method (zsseg/methods.py):
per seed, mean ± std over the seeds with the unseen classes' IoU, paired intervals of the proposed method
against every other zero-shot method, each method as a fraction of the supervised ceiling, figures and the
machine's provenance."""

import json
from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.classifier import load_classifier
from zsseg.datasets.folder import FolderDataset
from zsseg.methods import METHODS, ceiling, final_results
from zsseg.pipeline import grid_cell
from zsseg.provenance import machine_provenance
from zsseg.report import (PROTOCOLS, TABLE_COLUMNS, backbones_note, final_rows, grid_features, grid_markdown,
                          grid_table, intervals_note, mean_table, mean_views, paired_table, plot_grid_methods,
                          plot_grid_rounds, plot_unseen_classes, prediction_grid, provenance_view, result_title,
                          views_html, views_markdown)
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "device", "dataset.name", "dataset.background", "backbone", "features.batch_size",
          "table", "recursion.rounds", "report")
ARGUMENTS = {"dataset": "directory written by the prepare stage",
             "encoder": "encoder maps written by the encode stage",
             "grid": "directory holding k<K>/s<seed>/ for every K and seed",
             "output": "table directory to write"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("table", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        params, args = stage.params, stage.args
        k_values, seeds, rounds = params.table.k_values, params.table.seeds, sorted(params.recursion.rounds)
        table, classes = grid_table(args.grid, params.dataset.name, k_values, seeds, rounds)
        means, paired = mean_table(table, classes), paired_table(table)
        # The qualitative grid shows the largest K, where the methods differ most, for the first seed.
        k, seed = max(k_values), seeds[0]
        run = grid_cell(args.grid, k, seed)
        dataset = FolderDataset(args.dataset, params.dataset.background)
        class_split = dataset.class_split(k)
        batches, images = grid_features(params, run / "backbone", Path(args.encoder), dataset, stage.device)
        classifiers = {result_title(result): load_classifier(run / result.directory)
                       for result in final_results(rounds)}
        names = ", ".join(method.name for method in METHODS)
        backbones = backbones_note(params.table.backbone_per_seed, seeds)
        note = f"{intervals_note(seeds)} {backbones}"
        protocol = PROTOCOLS[params.dataset.background]
        header = (f"# Generalised zero-shot segmentation on {params.dataset.name}, {protocol}: {names}\n\n"
                  f"Seeds {seeds}; a method with rounds is shown by its last round ({rounds[-1]}). The "
                  f"{ceiling().name} is an upper bound that learns from unseen labels: never a zero-shot result. "
                  f"unseen_of_ceiling is a method's unseen mIoU divided by the ceiling's in the same cell. "
                  f"{note}\n\n")
        provenance = machine_provenance(params.threads, stage.device)
        views = [*mean_views(means, paired), provenance_view(provenance)]
        title = (f"Generalised zero-shot segmentation on {params.dataset.name}, {protocol}, K = {k_values}, "
                 f"seeds {seeds}")
        every_seed = [("Every seed, final results", final_rows(table)[list(TABLE_COLUMNS[1:])])]
        with atomic_path(args.output, directory=True) as directory:
            table.to_csv(directory / "summary.csv", index=False)
            means.to_csv(directory / "summary_mean.csv", index=False)
            paired.to_csv(directory / "paired.csv", index=False)
            (directory / "summary_mean.md").write_text(header + views_markdown(views))
            (directory / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
            (directory / "summary_mean.html").write_text(views_html(title, views, note))
            (directory / "summary.html").write_text(views_html(title, every_seed, note))
            (directory / "summary.md").write_text(
                header + "## Every seed\n\n" + grid_markdown(final_rows(table)) + "\n## Every round\n\n"
                + grid_markdown(table))
            plot_grid_rounds(table, directory / "rounds.png")
            plot_grid_methods(means, directory / "methods.png")
            plot_unseen_classes(classes, k, directory / "unseen_classes.png")
            prediction_grid(batches, images, classifiers, class_split, stage.device,
                            directory / f"predictions_k{k}.png")


if __name__ == "__main__":
    main()
