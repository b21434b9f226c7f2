"""Stage `table`: the paper's table over the K grid, one row per K and result of every method
(zsseg/methods.py), with its plots and a qualitative grid."""

from pathlib import Path

from zsseg.classifier import load_classifier
from zsseg.atomic import atomic_path
from zsseg.config import load_params
from zsseg.datasets.folder import FolderDataset
from zsseg.feature_cache import open_cache
from zsseg.methods import METHODS, final_results
from zsseg.report import final_rows, grid_markdown, grid_table, plot_grid_methods, plot_grid_rounds, prediction_grid
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "device", "dataset.name", "table", "recursion.rounds", "report")
ARGUMENTS = {"dataset": "directory written by the prepare stage",
             "grid": "directory holding k<K>/ for every K",
             "output": "table directory to write"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("table", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        params, args = stage.params, stage.args
        k_values, rounds = params.table.k_values, sorted(params.recursion.rounds)
        table = grid_table(args.grid, params.dataset.name, k_values, rounds)
        # The qualitative grid shows the largest K, where the methods differ most.
        k = max(k_values)
        run = Path(args.grid) / f"k{k}"
        cache = open_cache(run / "features" / "val.h5", load_params(args.params, k))
        count = min(params.report.grid_images, len(cache))
        dataset = FolderDataset(args.dataset)
        images = [dataset.load_image(image_id) for image_id in dataset.ids("val")[:count]]
        classifiers = {result.method.name + (f" round {result.round}" if result.method.per_round else ""):
                       load_classifier(run / result.directory) for result in final_results(rounds)}
        names = ", ".join(method.name for method in METHODS)
        per_round = ", ".join(f"{method.name} is its last round ({rounds[-1]})"
                              for method in METHODS if method.per_round)
        with atomic_path(args.output, directory=True) as directory:
            table.to_csv(directory / "summary.csv", index=False)
            (directory / "summary.md").write_text(
                f"# Generalised zero-shot segmentation on {params.dataset.name}: {names}\n\n{per_round}.\n\n"
                + grid_markdown(final_rows(table)) + "\n## Every round\n\n" + grid_markdown(table))
            plot_grid_rounds(table, directory / "rounds.png")
            plot_grid_methods(table, directory / "methods.png")
            prediction_grid(cache, images, classifiers, count, stage.device, directory / f"predictions_k{k}.png")


if __name__ == "__main__":
    main()
