"""Benchmark: the method's open choices compared on the demo's dev split, never on val.

Usage: python bench/dev_choices.py [--seeds 0 1 2] [--work DIR]   (from the project root, venv active)

For each seed it trains the default demo's backbone, feature cache and round 0 once (the demo images are
the same for every seed), then each variant of the recursion (``recursion.weighting`` x
``recursion.selection``, and a per-image cap) runs its rounds from that round 0, and each variant of
round 0 itself (ZS3Net's uniform noise, Xavier init, natural-frequency classifier with unseen weight
100) runs round 0 and the rounds. It prints the dev metrics of the last round, mean and standard
deviation over the seeds, per variant; a variant whose round mines no unseen class stops there and is
scored at its last round, marked. Every stage runs in this one process, as the engines run it.
"""

import argparse
import copy
import importlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from zsseg.classifier import load_classifier  # noqa: E402
from zsseg.config import parse_params  # noqa: E402
from zsseg.datasets.folder import FolderDataset  # noqa: E402
from zsseg.encoder_maps import shared_maps  # noqa: E402
from zsseg.evaluation import evaluate_classifiers  # noqa: E402
from zsseg.feature_extraction import split_features  # noqa: E402
from zsseg.network import NETWORK_FILE, load_network  # noqa: E402
from zsseg.metrics import segmentation_metrics  # noqa: E402
from zsseg.pipeline import stage_commands  # noqa: E402

RECURSION_VARIANTS = {
    f"{weighting} / {selection}": {"recursion.weighting": weighting, "recursion.selection": selection}
    for selection in ("most_confident", "random_above_threshold") for weighting in ("confidence", "rescaled", "uniform")
}
RECURSION_VARIANTS["confidence / most_confident, per_image_cap 20"] = {"recursion.per_image_cap": 20}
RECURSION_VARIANTS["rescaled / most_confident, per_image_cap 20"] = {"recursion.weighting": "rescaled",
                                                                     "recursion.per_image_cap": 20}
ROUND_ZERO_VARIANTS = {
    "generator.noise uniform": {"generator.noise": "uniform"},
    "generator.init xavier": {"generator.init": "xavier"},
    "generator.init xavier, rescaled / most_confident": {"generator.init": "xavier", "recursion.weighting": "rescaled"},
    "generator.init xavier, rescaled / most_confident, per_image_cap 20": {
        "generator.init": "xavier", "recursion.weighting": "rescaled", "recursion.per_image_cap": 20},
    "classifier natural, unseen_weight 100": {"classifier.sampling": "natural", "classifier.unseen_weight": 100.0},
}


def with_values(data: dict, overrides: dict) -> dict:
    data = copy.deepcopy(data)
    for key, value in overrides.items():
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return data


def run(params: dict, data: Path, names: tuple[str, ...]) -> None:
    path = data / "params.yaml"
    data.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    for module, arguments in stage_commands(params, str(data), names):
        importlib.import_module(module).main(["--params", str(path), *arguments])


def dev_metrics(run_directory: Path, round_index: int, params: dict) -> dict:
    """The dev metrics of a round, as the evaluate stage computes them: from the run's network."""
    values = parse_params(params)
    dataset = FolderDataset(run_directory / "dataset", values.dataset.background)
    class_split = dataset.class_split(values.dataset.unseen)
    network, _ = load_network(run_directory / "backbone" / NETWORK_FILE, torch.device("cpu"))
    batches = split_features(network, dataset, "dev", values.features.batch_size, torch.device("cpu"),
                             maps=shared_maps(run_directory / "encoder_maps.h5", values.backbone))
    confusion, = evaluate_classifiers(batches, [load_classifier(run_directory / "rounds" / str(round_index))],
                                      class_split.num_classes, torch.device("cpu"))
    return segmentation_metrics(confusion, class_split.names, class_split.unseen, values.evaluate.absent_classes,
                                class_split.ignored)


def link_shared(source: Path, target: Path, names: tuple[str, ...]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        if not (target / name).exists():
            (target / name).symlink_to((source / name).resolve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", default="/tmp/zsseg_dev_choices")
    args = parser.parse_args()
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    work = Path(args.work)
    shared = work / "shared"
    started = time.perf_counter()
    if not (shared / "embeddings.npz").is_file():
        run(with_values(base, {"dataset.root": str(shared / "demo")}), shared, ("demo", "prepare", "embed", "encode"))
    last = max(int(r) for r in base["recursion"]["rounds"])
    scores: dict[str, list[dict]] = {}
    stopped: dict[str, list[int]] = {}
    baseline = "default (confidence / most_confident)"
    for seed in args.seeds:
        seeded = with_values(base, {"seed": seed, "dataset.root": str(shared / "demo")})
        seed_run = work / f"seed{seed}" / "default"
        link_shared(shared, seed_run, ("demo", "dataset", "embeddings.npz", "encoder_maps.h5"))
        if not (seed_run / "rounds" / str(last)).is_dir():
            run(seeded, seed_run, ("backbone", "features", "samples", "round_0", "recursive_round"))
        scores.setdefault(baseline, []).append(dev_metrics(seed_run, last, seeded))
        for name, overrides in {**RECURSION_VARIANTS, **ROUND_ZERO_VARIANTS}.items():
            variant = work / f"seed{seed}" / name.replace(" ", "_").replace("/", "").replace(",", "")
            link_shared(seed_run, variant, ("demo", "dataset", "embeddings.npz", "encoder_maps.h5", "backbone",
                                            "features"))
            if name in RECURSION_VARIANTS:
                link_shared(seed_run, variant, ("samples.h5",))
                link_shared(seed_run / "rounds", variant / "rounds", ("0",))
            # A variant of round 0 may sample otherwise (classifier.sampling): it draws its own samples.
            stages = ("recursive_round",) if name in RECURSION_VARIANTS else ("samples", "round_0", "recursive_round")
            if not (variant / "rounds" / str(last)).is_dir():
                try:
                    run(with_values(seeded, overrides), variant, stages)
                except SystemExit:
                    # A round that mines nothing stops (recursion.allow_empty_rounds): score where it stopped.
                    stopped.setdefault(name, []).append(seed)
            reached = max(int(path.name) for path in (variant / "rounds").iterdir())
            scores.setdefault(name, []).append(dev_metrics(variant, reached, with_values(seeded, overrides)))
        print(f"seed {seed} done after {time.perf_counter() - started:.0f} s", flush=True)
    print(f"\nDev split ({base['demo']['dev_images']} images), round {last}, mean ± std over seeds {args.seeds}:\n")
    print(f"| {'variant':<50} | hIoU | unseen mIoU | seen mIoU | hIoU - default, seed by seed |")
    print(f"|{'-' * 52}|---:|---:|---:|---|")
    for name, runs in scores.items():
        cells = []
        for key in ("hiou", "unseen_miou", "seen_miou"):
            values = [metrics[key] for metrics in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.2f} ± {spread:.2f}")
        note = f" (stopped: no class mined, seeds {stopped[name]})" if name in stopped else ""
        paired = ", ".join(f"{run['hiou'] - reference['hiou']:+.2f}" for run, reference in zip(runs, scores[baseline]))
        print(f"| {name + note:<50} | " + " | ".join(cells) + f" | {paired} |")
    (work / "dev_choices.json").write_text(json.dumps(scores, indent=1))


if __name__ == "__main__":
    main()
