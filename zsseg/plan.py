"""`zsseg plan [TARGET ...]`: what a Snakemake run will cost before it is launched.

The jobs per rule come from Snakemake's own dry run (``snakemake -n TARGET ...``: the jobs still to run, or with
``--from-scratch`` every job). What each job asks for comes from its Snakemake rule
(:func:`zsseg.pipeline.snakemake_rules`: params.yaml's ``threads`` and ``resources``), so the GPU-hours are an
upper bound: each job's declared time limit, not a measurement. The disk the grid's cells still need is zsseg/disk.py's
prediction, the one the disk_check stage checks before the cells write their caches.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from zsseg.config import Params, ParamsError, load_params
from zsseg.pipeline import DATA, snakemake_rules


def snakemake_job_counts(targets: list[str], from_scratch: bool) -> dict[str, int]:
    """Snakemake's count of the jobs of each rule that a run of ``targets`` would start, from its dry run."""
    executable = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    command = [executable, "-n", *(["--forceall"] if from_scratch else []), *targets]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"zsseg plan: {' '.join(command[1:])} failed:\n{result.stderr[-3000:]}")
    match = re.search(r"^Job stats:\njob\s+count\n[- ]+\n(.*?)\ntotal\s+\d+$", result.stdout, flags=re.M | re.S)
    if match is None:
        return {}
    return {rule: int(count) for rule, count in (line.split() for line in match.group(1).splitlines())}


def plan_rows(params: Params, counts: dict[str, int]) -> list[dict]:
    """One row per rule: its jobs, threads and resources as its Snakemake rule declares them, and the
    GPU-hours its jobs may take at most."""
    rules = {rule.name: rule for rule in snakemake_rules(params.raw)}
    rows = []
    for name, jobs in counts.items():
        if name == "all":   # the default target: no job runs for it
            continue
        rule = rules[name]
        gpus, runtime = rule.resources.get("gpu", 0), rule.resources["runtime"]
        rows.append({"rule": name, "jobs": jobs, "threads": rule.threads, "mem_mb": rule.resources["mem_mb"],
                     "runtime_min": runtime, "gpus": gpus, "gpu_hours": jobs * gpus * runtime / 60,
                     "cpu_hours": jobs * rule.threads * runtime / 60})
    return rows


def format_plan(params: Params, targets: list[str], rows: list[dict]) -> str:
    header = f"{'rule':<45} {'jobs':>5} {'threads':>7} {'mem_mb':>7} {'runtime':>8} {'gpus':>4} {'GPU-hours':>10}"
    lines = [f"snakemake {' '.join(targets)}: device {params.device}, K {params.table.k_values} x seeds {params.table.seeds}, "
             f"backbone_per_seed {str(params.table.backbone_per_seed).lower()}", "", header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row['rule']:<45} {row['jobs']:>5} {row['threads']:>7} {row['mem_mb']:>7} "
                     f"{row['runtime_min']:>7}m {row['gpus']:>4} {row['gpu_hours']:>10.1f}")
    lines.append("-" * len(header))
    lines.append(f"{'total':<45} {sum(row['jobs'] for row in rows):>5} {'':>7} {'':>7} {'':>8} {'':>4} "
                 f"{sum(row['gpu_hours'] for row in rows):>10.1f}")
    gpu_jobs = sum(row["jobs"] for row in rows if row["gpus"])
    lines += ["", f"{gpu_jobs} jobs ask for a GPU: at most {sum(row['gpu_hours'] for row in rows):.1f} GPU-hours, "
                  f"and {sum(row['cpu_hours'] for row in rows if not row['gpus']):.1f} core-hours on CPU-only "
                  f"jobs, by each job's time limit (params.yaml's resources: an upper bound, not a measurement)."]
    return "\n".join(lines)


def disk_line(params: Params, data: Path) -> str:
    # Here, not at the top: the disk's prediction imports torch, which counting the jobs does not need.
    from zsseg.datasets.folder import FolderDataset
    from zsseg.disk import grid_needs

    dataset = data / "dataset"
    if not dataset.is_dir():
        return (f"Disk: not predicted: {dataset} is not there yet (`snakemake {dataset}` makes it in seconds: "
                f"the prepare stage links the dataset's files).")
    needs = grid_needs(params, FolderDataset(dataset), data, lambda message: None)
    need = sum(item.still_needed for item in needs)
    free = shutil.disk_usage(data).free
    return (f"Disk: the {len(needs)} grid cells still to run need about {need / 1e9:.1f} GB under {data}/ "
            f"(zsseg/disk.py, as the disk_check stage predicts it); its filesystem has {free / 1e9:.1f} GB free.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="zsseg plan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", default=["table"],
                        help="Snakemake's targets (default: table, the grid; all: the single run)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="every job, as if nothing had run yet (snakemake --forceall)")
    parser.add_argument("--params", default="params.yaml", help="the parameter file (default: params.yaml)")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
    except (ParamsError, FileNotFoundError, yaml.YAMLError) as error:
        raise SystemExit(f"zsseg plan: error: {error}") from error
    rows = plan_rows(params, snakemake_job_counts(args.targets, args.from_scratch))
    print(format_plan(params, args.targets, rows))
    if "table" in args.targets:
        print(disk_line(params, Path(DATA)))


if __name__ == "__main__":
    main()
