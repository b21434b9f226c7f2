"""Stage `report`: summary table (CSV and Markdown), DVC plot data, round curves and a prediction grid."""

import argparse
from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.config import load_params
from zsseg.datasets import FolderDataset
from zsseg.feature_cache import FeatureCache
from zsseg.report import markdown_table, methods_table, plot_rounds, prediction_grid, summary_table
from zsseg.rounds import load_classifier
from zsseg.runtime import configure_torch, resolve_device, run_stage
from stages.features import CACHE_SECTIONS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--unseen", type=int, help="K, replacing dataset.unseen (a cell of the K grid)")
    parser.add_argument("--dataset", required=True, help="directory written by the prepare stage")
    parser.add_argument("--features", required=True, help="directory written by the features stage")
    parser.add_argument("--rounds", required=True, help="directory holding one subdirectory per round")
    parser.add_argument("--metrics", required=True, help="directory written by the evaluate stage")
    parser.add_argument("--output", required=True, help="report directory to write")
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params, args.unseen)
        device = resolve_device(params.device)
        configure_torch(params.threads, params.seed)
        rounds = params.recursion.all_rounds()
        frame = summary_table(args.metrics, rounds)
        methods = methods_table(args.metrics, rounds)
        cache = FeatureCache(Path(args.features) / "val.h5", params.section_hash(*CACHE_SECTIONS))
        dataset = FolderDataset(args.dataset)
        count = min(params.report.grid_images, len(cache))
        images = [dataset.load_image(image_id) for image_id in dataset.ids("val")[:count]]
        classifiers = {f"round {r}": load_classifier(Path(args.rounds) / str(r)) for r in rounds}
        with atomic_path(args.output, directory=True) as directory:
            frame.to_csv(directory / "summary.csv", index=False)
            methods.to_csv(directory / "methods.csv", index=False)
            (directory / "summary.md").write_text(
                f"# Generalised zero-shot results per round ({params.dataset.name}, "
                f"{len(cache.unseen)} unseen classes, {params.embed.source} embeddings)\n\n"
                + markdown_table(frame) + "\n## Methods\n\n" + markdown_table(methods))
            plot_rounds(frame, directory / "rounds.png")
            prediction_grid(cache, images, classifiers, count, device, directory / "predictions.png")

    run_stage("report", body)


if __name__ == "__main__":
    main()
