"""Benchmark: two runs of the K x seed grid compared on the demo's dev split, cell by cell.

Usage: python bench/dev_compare.py BASE_DATA OTHER_DATA [--k 2 4 ...] [--seeds 0 1 2]   (venv active)

BASE_DATA and OTHER_DATA are the data/ folders of two `snakemake table` runs that differ in one value
(say, backbone.epochs). For each method's final result and each of hIoU, unseen and seen mIoU it pairs the
two runs' dev metrics by (K, seed) and prints, per K, the mean of each side and the mean difference
OTHER - BASE over the seeds with its paired 95% t-interval (scipy; seeds - 1 degrees of freedom). The
overall row is the mean of the per-K mean differences, with a t-interval over those K means (K values - 1
degrees of freedom): the cells of one K share its classes and are not independent draws, so pooling all
cells into one interval with cells - 1 degrees of freedom would claim a precision the grid does not have.
Values are chosen on dev, never on val (issue "An honest protocol").
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
    print(f"dev split, {len(cells)} cells (K {args.k} x seeds {args.seeds}); other - base, 95% t-interval; "
          f"'all K': the mean of the per-K means, its interval over the {len(args.k)} K")
    print(f"{'result':<52} {'metric':<12} {'K':>6} {'base':>7} {'other':>7} {'diff':>7} {'interval':>17}")
    for result in results(rounds):
        if result.method.per_round and result.round != last:
            continue
        name = f"{result.method.name} (round {result.round})"
        for metric in METRICS:
            per_k = []
            for k in args.k:
                base = [dev_metrics(args.base, k, seed, result.metrics)[metric] for seed in args.seeds]
                other = [dev_metrics(args.other, k, seed, result.metrics)[metric] for seed in args.seeds]
                mean, low, high = mean_and_t_interval([b - a for a, b in zip(base, other)])
                per_k.append((sum(base) / len(base), sum(other) / len(other), mean))
                print(f"{name:<52} {metric:<12} {k:>6} {per_k[-1][0]:7.2f} {per_k[-1][1]:7.2f} {mean:+7.2f} "
                      f"[{low:+6.2f}, {high:+6.2f}]")
            mean, low, high = mean_and_t_interval([difference for _, _, difference in per_k])
            print(f"{name:<52} {metric:<12} {'all K':>6} {sum(b for b, _, _ in per_k) / len(per_k):7.2f} "
                  f"{sum(o for _, o, _ in per_k) / len(per_k):7.2f} {mean:+7.2f} [{low:+6.2f}, {high:+6.2f}]")


if __name__ == "__main__":
    main()
