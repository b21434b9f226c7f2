"""Benchmark: two runs of the K x seed grid compared on the demo's dev split, cell by cell.

Usage: python bench/dev_compare.py BASE_DATA OTHER_DATA [--k 2 4 ...] [--seeds 0 1 2]   (venv active)

BASE_DATA and OTHER_DATA are the data/ folders of two `snakemake table` runs that differ in one value
(say, backbone.epochs). For each method's final result it pairs the two runs' dev metrics by (K, seed)
and prints the mean of each side, the mean difference OTHER - BASE and its 95% t-interval (scipy), for
hIoU, unseen and seen mIoU, and for hIoU the same per K, paired over the seeds. Values are chosen on dev, never
on val (issue "An honest protocol").
"""

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from zsseg.methods import results  # noqa: E402
from zsseg.pipeline import grid_cell  # noqa: E402
from zsseg.report import mean_and_t_interval  # noqa: E402

METRICS = ("hiou", "unseen_miou", "seen_miou")


def dev_metrics(data: Path, k: int, seed: int, stem: str) -> dict:
    return json.loads((grid_cell(data, k, seed) / "dev_metrics" / f"{stem}.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", type=Path)
    parser.add_argument("other", type=Path)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    parser.add_argument("--k", type=int, nargs="+", default=params["table"]["k_values"])
    parser.add_argument("--seeds", type=int, nargs="+", default=params["table"]["seeds"])
    args = parser.parse_args()
    rounds = [int(key) for key in params["recursion"]["rounds"]]
    last = max(rounds)
    cells = [(k, seed) for k in args.k for seed in args.seeds]
    print(f"dev split, {len(cells)} cells (K {args.k} x seeds {args.seeds}); other - base, 95% t-interval")
    print(f"{'result':<52} {'metric':<12} {'base':>7} {'other':>7} {'diff':>7} {'interval':>17}")
    for result in results(rounds):
        if result.method.per_round and result.round != last:
            continue
        for metric in METRICS:
            base = [dev_metrics(args.base, k, seed, result.metrics)[metric] for k, seed in cells]
            other = [dev_metrics(args.other, k, seed, result.metrics)[metric] for k, seed in cells]
            mean, low, high = mean_and_t_interval([b - a for a, b in zip(base, other)])
            name = f"{result.method.name} (round {result.round})"
            print(f"{name:<52} {metric:<12} {sum(base) / len(base):7.2f} {sum(other) / len(other):7.2f} "
                  f"{mean:+7.2f} [{low:+6.2f}, {high:+6.2f}]")
            if metric == "hiou" and len(args.seeds) > 1:
                # Per K, paired over the seeds: the 15 cells are 5 groups, not 15 independent draws.
                for k in args.k:
                    pairs = [(a, b) for (cell_k, _), a, b in zip(cells, base, other) if cell_k == k]
                    mean, low, high = mean_and_t_interval([b - a for a, b in pairs])
                    print(f"{'':<52} {f'  K = {k}':<12} {sum(a for a, _ in pairs) / len(pairs):7.2f} "
                          f"{sum(b for _, b in pairs) / len(pairs):7.2f} {mean:+7.2f} [{low:+6.2f}, {high:+6.2f}]")


if __name__ == "__main__":
    main()
