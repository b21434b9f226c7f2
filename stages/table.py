"""Stage `table`: the paper's table over the K grid (ZS3Net, ZS5Net self-training, recursive ZS-MMD)."""

import argparse
from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.config import load_params
from zsseg.datasets import FolderDataset
from zsseg.feature_cache import FeatureCache
from zsseg.report import final_rows, grid_markdown, grid_table, plot_grid_methods, plot_grid_rounds, prediction_grid
from zsseg.rounds import load_classifier
from zsseg.runtime import configure_torch, resolve_device, run_stage
from stages.features import CACHE_SECTIONS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dataset", required=True, help="directory written by the prepare stage")
    parser.add_argument("--grid", required=True, help="directory holding k<K>/ for every K")
    parser.add_argument("--output", required=True, help="table directory to write")
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params)
        device = resolve_device(params.device)
        configure_torch(params.threads, params.seed)
        k_values, rounds = params.table.k_values, params.recursion.all_rounds()
        table = grid_table(args.grid, params.dataset.name, k_values, rounds)
        # The qualitative grid shows the largest K, where the methods differ most.
        k = max(k_values)
        run = Path(args.grid) / f"k{k}"
        cache = FeatureCache(run / "features" / "val.h5",
                             load_params(args.params, k).section_hash(*CACHE_SECTIONS))
        count = min(params.report.grid_images, len(cache))
        dataset = FolderDataset(args.dataset)
        images = [dataset.load_image(image_id) for image_id in dataset.ids("val")[:count]]
        classifiers = {"ZS3Net": load_classifier(run / "rounds" / "0"),
                       "ZS5Net": load_classifier(run / "self_training"),
                       f"ZS-MMD round {rounds[-1]}": load_classifier(run / "rounds" / str(rounds[-1]))}
        with atomic_path(args.output, directory=True) as directory:
            table.to_csv(directory / "summary.csv", index=False)
            (directory / "summary.md").write_text(
                f"# Generalised zero-shot segmentation on {params.dataset.name}: ZS3Net, ZS5Net self-training and "
                f"recursive ZS-MMD\n\nZS-MMD is its last round ({rounds[-1]}).\n\n" + grid_markdown(final_rows(table))
                + "\n## Every round\n\n" + grid_markdown(table))
            plot_grid_rounds(table, directory / "rounds.png")
            plot_grid_methods(table, directory / "methods.png")
            prediction_grid(cache, images, classifiers, count, device, directory / f"predictions_k{k}.png")

    run_stage("table", body)


if __name__ == "__main__":
    main()
