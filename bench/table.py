"""Benchmark: the whole grid (`snakemake --cores N table`: every K x seed x method) from scratch, with its
wall time, the time each rule took, and the paper's table.

Usage: python bench/table.py [--cores 2]   (run from the project root, venv on PATH)
It removes data/k*/ and data/table/ (the K- and seed-independent stages are kept), runs the grid, prints
the wall time, the total and mean time of each rule from Snakemake's own job log, and summary_mean.md.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from machine_load import other_load_since, snapshot

ROOT = Path(__file__).resolve().parents[1]


def rule_times(log: str) -> dict[str, list[float]]:
    """Each job's wall time from Snakemake's log: from its rule's start stamp to its "Finished jobid" line."""
    started, times = {}, defaultdict(list)
    stamp = None
    for line in log.splitlines():
        match = re.match(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]", line)
        if match:
            stamp = datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y")
        match = re.match(r"\s*(?:local)?rule (\w+):", line)
        if match:
            rule = match.group(1)
        match = re.match(r"\s*jobid: (\d+)", line)
        if match and stamp:
            started[match.group(1)] = (rule, stamp)
        match = re.search(r"Finished jobid: (\d+)", line)
        if match and match.group(1) in started and stamp:
            name, begin = started.pop(match.group(1))
            times[name].append((stamp - begin).total_seconds())
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    for directory in [*ROOT.glob("data/k[0-9]*"), ROOT / "data" / "table"]:
        shutil.rmtree(directory, ignore_errors=True)
    load = snapshot()
    started = time.perf_counter()
    result = subprocess.run(["snakemake", "--cores", str(args.cores), "table"], cwd=ROOT,
                            env={**os.environ, "TQDM_DISABLE": "1"}, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"snakemake failed:\n{result.stderr[-3000:]}")
    print(f"snakemake --cores {args.cores} table: {seconds:.0f} s ({seconds / 60:.1f} min; target <= 30 min)\n")
    print(f"{'rule':<46} {'jobs':>4} {'total s':>8} {'mean s':>7}")
    for rule, values in sorted(rule_times(result.stdout + result.stderr).items(), key=lambda item: -sum(item[1])):
        print(f"{rule:<46} {len(values):>4} {sum(values):8.0f} {sum(values) / len(values):7.1f}")
    print(other_load_since(load))
    print()
    print((ROOT / "data" / "table" / "summary_mean.md").read_text())


if __name__ == "__main__":
    main()
