"""Benchmark: a cold `dvc repro` of the default demo, stage by stage, for this working tree and a base
commit, on the same machine in one run, and the ratio of each stage's time.

Usage: python bench/stage_times.py [--base REV] [--repeats N] [--work DIR]   (from the project root, venv active)

Each side is a fresh copy (the base from `git worktree`, this side from the files git would clone) with
its own empty data/: every stage runs. A stage's time is from DVC's "Running stage" line to the next one
(so DVC's own bookkeeping is in it, alike on both sides). The recursive rounds are compared per round.
The sides take turns (base, this, base, this, ...) and each time is the mean over ``--repeats`` runs: the
speed of a shared machine drifts within minutes, and turns spread the drift over both sides alike.
"""

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from machine_load import other_load_since, snapshot

ROOT = Path(__file__).resolve().parents[1]
# Stages that do work an older pipeline did inside other stages: `encode` runs the frozen encoder that
# `backbone` and `features` each ran.
TOOK_OVER = {"encode"}


def copy_working_tree(destination: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "bench"]):
        subprocess.run(command, cwd=destination, check=True, capture_output=True)


def repro_stage_times(root: Path, command: list[str]) -> tuple[dict[str, float], float]:
    """Run a `dvc repro` command in ``root``: each stage's seconds, in the order run, and the total."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**__import__("os").environ, "TQDM_DISABLE": "1"})
    starts = []
    for line in process.stdout:
        match = re.match(r"Running stage '([^']+)'", line)
        if match:
            starts.append((match.group(1), time.perf_counter()))
    if process.wait() != 0:
        sys.exit(f"{' '.join(command)} failed in {root}")
    total = time.perf_counter() - started
    ends = [start for _, start in starts[1:]] + [started + total]
    return {stage: end - start for (stage, start), end in zip(starts, ends)}, total


def timed_repro(root: Path) -> tuple[dict[str, float], float]:
    """A cold `dvc repro --force`: no outputs and an empty DVC cache, as on a fresh clone."""
    shutil.rmtree(root / "data", ignore_errors=True)
    shutil.rmtree(root / ".dvc" / "cache", ignore_errors=True)
    (root / "data").mkdir()
    return repro_stage_times(root, ["dvc", "repro", "--force"])


def mean_times(runs: list[tuple[dict[str, float], float]]) -> tuple[dict[str, float], float]:
    """Each stage's mean seconds over runs of one side (the stage order of the first), and the mean total."""
    stages = {stage: sum(times[stage] for times, _ in runs) / len(runs) for stage in runs[0][0]}
    return stages, sum(total for _, total in runs) / len(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="HEAD", help="the commit to compare with (default: HEAD)")
    parser.add_argument("--repeats", type=int, default=2, help="cold runs of each side, taking turns (default: 2)")
    parser.add_argument("--work", default="/tmp/zsseg_stage_times")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    base, head = work / "base", work / "head"
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(base), args.base], cwd=ROOT, check=True)
    try:
        head.mkdir()
        copy_working_tree(head)
        load = snapshot()
        runs = {"base": [], "head": []}
        for _ in range(args.repeats):
            for name, root in (("base", base), ("head", head)):
                runs[name].append(timed_repro(root))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
    shutil.rmtree(work, ignore_errors=True)
    (base_stages, base_total), (head_stages, head_total) = mean_times(runs["base"]), mean_times(runs["head"])
    print(f"mean of {args.repeats} cold run(s) per side, taking turns")

    def canonical(stage: str) -> str:
        return re.sub(r"^(round|recursive_round)@", "recursive round @", stage)

    base_by = {canonical(stage): seconds for stage, seconds in base_stages.items()}
    print(f"{'stage':<42} {'base s':>8} {'this s':>8} {'ratio':>6}")
    for stage, seconds in head_stages.items():
        before = base_by.get(canonical(stage))
        ratio = f"{seconds / before:6.2f}" if before else "   new"
        print(f"{stage:<42} {before if before else float('nan'):8.1f} {seconds:8.1f} {ratio}")
    rounds = [canonical(stage) for stage in head_stages if canonical(stage).startswith("recursive round")]
    base_round = sum(base_by[stage] for stage in rounds) / len(rounds)
    head_round = sum(head_stages[stage.replace("recursive round @", "recursive_round@")] for stage in rounds) / len(rounds)
    print(f"\n{'a recursive round (mean)':<42} {base_round:8.1f} {head_round:8.1f} {head_round / base_round:6.2f}")
    print(f"{'cold dvc repro':<42} {base_total:8.1f} {head_total:8.1f} {head_total / base_total:6.2f}")
    # The work both sides do: the stages both have, plus a new stage that took over part of their work.
    common = [stage for stage in head_stages if canonical(stage) in base_by or stage in TOOK_OVER]
    common_time = sum(head_stages[stage] for stage in common)
    print(f"{'cold dvc repro, the work both do':<42} {sum(base_by.values()):8.1f} {common_time:8.1f} "
          f"{common_time / sum(base_by.values()):6.2f}")
    print(other_load_since(load))


if __name__ == "__main__":
    main()
