"""Benchmark: the whole grid (`snakemake --cores N table`: every K x seed x method) from scratch, with its
wall time, the time each rule took, and the paper's table.

Usage: python bench/table.py [--cores 2]   (run from the project root, venv on PATH)
It removes data/k*/ and data/table/ (the K- and seed-independent stages are kept), runs the grid, prints
the wall time, each rule's jobs with their total and longest wall time and their peak memory (from the
benchmark file Snakemake writes for every job: workflow/Snakefile), and summary_mean.md.
"""

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from machine_load import other_load_since, snapshot
from zsseg.pipeline import Rule, snakemake_rules

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class JobBenchmark:
    """One row of a job's benchmark file (Snakemake's TSV: s, h:m:s, max_rss, ...)."""

    seconds: float              # wall time
    # Peak resident memory of the job's processes together, in MiB, as sampled (every 0.5 s for the first
    # 30 s, then every 30 s); None (Snakemake's NA) for a job that ended before the first sample.
    max_rss_mib: float | None


def read_benchmark(path: Path) -> JobBenchmark:
    with open(path, newline="") as handle:
        (row,) = csv.DictReader(handle, delimiter="\t")  # one run per job: no rule uses repeat()
    return JobBenchmark(float(row["s"]), None if row["max_rss"] == "NA" else float(row["max_rss"]))


def benchmark_files(root: Path, rule: Rule) -> list[Path]:
    """The benchmark files of a rule's jobs under ``root``: its path with each wildcard in its constraint."""
    parts = re.split(r"\{(\w+)\}", rule.benchmark)   # literal, wildcard, literal, ...
    pattern = "".join(re.escape(part) if index % 2 == 0 else f"(?:{rule.wildcard_constraints[part]})"
                      for index, part in enumerate(parts))
    candidates = root.glob("".join(part if index % 2 == 0 else "*" for index, part in enumerate(parts)))
    return sorted(path for path in candidates if re.fullmatch(pattern, path.relative_to(root).as_posix()))


def rule_benchmarks(root: Path, rules: list[Rule], since: float = 0.0) -> dict[str, list[JobBenchmark]]:
    """Per rule, the benchmark of each of its jobs that finished after ``since`` (seconds since the epoch)."""
    found = {rule.name: [read_benchmark(path) for path in benchmark_files(root, rule) if path.stat().st_mtime >= since]
             for rule in rules}
    return {name: jobs for name, jobs in found.items() if jobs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    for directory in [*ROOT.glob("data/k[0-9]*"), ROOT / "data" / "table"]:
        shutil.rmtree(directory, ignore_errors=True)
    load = snapshot()
    started, started_at = time.perf_counter(), time.time()
    result = subprocess.run(["snakemake", "--cores", str(args.cores), "table"], cwd=ROOT,
                            env={**os.environ, "TQDM_DISABLE": "1"}, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"snakemake failed:\n{result.stderr[-3000:]}")
    print(f"snakemake --cores {args.cores} table: {seconds:.0f} s ({seconds / 60:.1f} min; target <= 30 min)\n")
    config = yaml.safe_load((ROOT / "params.yaml").read_text())
    benchmarks = rule_benchmarks(ROOT, snakemake_rules(config), since=started_at)
    print(f"{'rule':<46} {'jobs':>4} {'total s':>8} {'max s':>7} {'max RSS MiB':>11}")
    for rule, jobs in sorted(benchmarks.items(), key=lambda item: -sum(job.seconds for job in item[1])):
        memory = [job.max_rss_mib for job in jobs if job.max_rss_mib is not None]
        print(f"{rule:<46} {len(jobs):>4} {sum(job.seconds for job in jobs):8.0f} "
              f"{max(job.seconds for job in jobs):7.1f} {f'{max(memory):.0f}' if memory else 'NA':>11}")
    print(other_load_since(load))
    print()
    print((ROOT / "data" / "table" / "summary_mean.md").read_text())


if __name__ == "__main__":
    main()
