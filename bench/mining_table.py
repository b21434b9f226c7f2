"""Benchmark: what recursive ZS-MMD mined in each round of a K x seed grid, per unseen class.

Usage: python bench/mining_table.py DATA [--k 4 10] [--seeds 0 1 2] [--split metrics|dev_metrics]   (venv active)

DATA is the data/ folder of a `snakemake table` run. For each K, round and unseen class it prints, over the
seeds: the mean number of pseudo-features, how many seeds mined the class, the mean precision of those
pseudo-features outside mixed blocks (the cells' mining_precision.csv, from the ceiling's labels: a
diagnostic, never a training input), and the class's mean IoU after the round (val by default). Then, per K,
the round by which every seed had mined every unseen class, if any, and each class's IoU after the last
round against round 0 (the mean over the seeds). No value is chosen from it.
"""

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from zsseg.methods import round_curve  # noqa: E402
from zsseg.mining_precision import read_mining_precision  # noqa: E402
from zsseg.pipeline import grid_cell  # noqa: E402
from zsseg.report import precision_table  # noqa: E402


def cell_rows(data: Path, k: int, seed: int, rounds: list[int], split: str) -> list[dict]:
    """The report's mining table of one cell (zsseg.report.precision_table), with round 0's class IoUs."""
    cell = grid_cell(data, k, seed)
    mined = precision_table(read_mining_precision(cell / "mining_precision.csv"),
                            cell / split, rounds)
    start = json.loads((cell / split / f"{round_curve(rounds)[0].metrics}.json").read_text())
    round_zero = pd.DataFrame({"round": 0, "class": start["unseen_classes"], "pseudo_features": 0,
                               "iou": [start["per_class_iou"].get(name) for name in start["unseen_classes"]]})
    frame = pd.concat([round_zero, mined], ignore_index=True)
    frame["mined"] = frame["pseudo_features"] > 0
    return [{"k": k, "seed": seed, **row} for row in frame.to_dict("records")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    parser.add_argument("--k", type=int, nargs="+", default=params["table"]["k_values"])
    parser.add_argument("--seeds", type=int, nargs="+", default=params["table"]["seeds"])
    parser.add_argument("--split", choices=("metrics", "dev_metrics"), default="metrics")
    args = parser.parse_args()
    rounds = sorted(int(key) for key in params["recursion"]["rounds"])
    frame = pd.DataFrame([row for k in args.k for seed in args.seeds
                          for row in cell_rows(args.data, k, seed, rounds, args.split)])
    pd.set_option("display.width", 160)
    for k, rows in frame.groupby("k"):
        print(f"\nK = {k} ({args.split}, {len(args.seeds)} seeds): per round and unseen class")
        table = rows[rows["round"] > 0].groupby(["round", "class"], sort=False).agg(
            pseudo_features=("pseudo_features", "mean"), seeds_mined=("mined", "sum"),
            precision=("precision", "mean"), iou=("iou", "mean")).round(1)
        print(table.to_string())
        every = [r for r in rounds if rows[(rows["round"] == r)]["mined"].all()]
        print(f"every unseen class mined in every seed by round: {every[0] if every else 'never'}")
        by_class = rows.groupby(["class", "round"])["iou"].mean().unstack()
        below = by_class[by_class[rounds[-1]] < by_class[0]]
        print(f"classes whose mean IoU after round {rounds[-1]} is below round 0's: "
              + (", ".join(f"{name} ({row[0]:.1f} -> {row[rounds[-1]]:.1f})" for name, row in below.iterrows())
                 or "none"))


if __name__ == "__main__":
    main()
