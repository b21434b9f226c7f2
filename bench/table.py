"""Benchmark: the whole K grid (`snakemake --cores N table`) from scratch, with wall time and the table.

Usage: python bench/table.py [--cores 2] [--cores 1 ...]   (run from the project root, venv on PATH)
For each --cores value it removes data/k*/ and data/table/ (the K-independent stages are kept), runs
the grid, prints the wall time and checks that recursive ZS-MMD beats ZS3Net's hIoU at every K.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def run_grid(cores: int) -> float:
    for directory in [*ROOT.glob("data/k[0-9]*"), ROOT / "data" / "table"]:
        shutil.rmtree(directory, ignore_errors=True)
    started = time.perf_counter()
    result = subprocess.run(["snakemake", "--cores", str(cores), "table"], cwd=ROOT,
                            env={**os.environ, "TQDM_DISABLE": "1"}, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"snakemake failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cores", type=int, action="append")
    args = parser.parse_args()
    times = {cores: run_grid(cores) for cores in (args.cores or [2])}
    for cores, seconds in times.items():
        print(f"snakemake --cores {cores} table: {seconds:.0f} s ({seconds / 60:.1f} min; target <= 20 min at 2 cores)")
    if len(times) > 1:
        first, *rest = times
        for cores in rest:
            print(f"--cores {cores} / --cores {first} wall time: {times[cores] / times[first]:.2f}")
    table = pd.read_csv(ROOT / "data" / "table" / "summary.csv")
    print((ROOT / "data" / "table" / "summary.md").read_text())
    last = table["round"].max()
    for k, rows in table.groupby("k"):
        zs3 = rows[rows["method"] == "ZS3Net"]["hiou"].iloc[0]
        mmd = rows[(rows["method"] == "recursive ZS-MMD") & (rows["round"] == last)]["hiou"].iloc[0]
        print(f"K = {k}: recursive ZS-MMD hIoU {mmd:.2f} vs ZS3Net {zs3:.2f}: "
              f"{'beats' if mmd > zs3 else 'DOES NOT beat'}")


if __name__ == "__main__":
    main()
