"""Benchmark: kill every stage with SIGKILL at a random point, rerun, compare with an uninterrupted run.

Usage: python bench/interrupt.py [--engine dvc|snakemake|both] [--seed 0]   (venv's bin on PATH)
Works on a tiny copy of the project in a temporary git repository (the tests' tiny params). For each
stage it forces that stage and everything downstream to run (`dvc repro --force --downstream STAGE`,
`snakemake --forcerun RULE`), SIGKILLs the whole process group at a random point of the stage (a
uniform fraction of the stage's wall time in the reference run), reruns (`dvc repro --no-run-cache`,
so that the stages really run again instead of being restored from DVC's run cache; `snakemake
--unlock` then `snakemake --cores 2`, with `--rerun-incomplete` when Snakemake reports an output of
the killed job as incomplete) and checks that every metrics file is byte-identical to the
uninterrupted reference. Linux only (it watches /proc).
"""

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pipeline_runs import ENV, project_clone, run, stage_running  # noqa: E402
from zsseg import pipeline  # noqa: E402

# (DVC stage, Snakemake rule, stage module, output) of every stage of the single run; round 1 of the rounds.
STAGES = [(entry.name + ("@1" if entry.per_round else ""), entry.name, entry.name,
           entry.outputs["output"].format(data="data", run="data", round=1))
          for entry in pipeline.STAGES if entry.scope != pipeline.GRID]


def metrics(root: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((root / "data" / "metrics").glob("*.json"))}


def timed_run(command: list[str], root: Path) -> dict[str, float]:
    """Run ``command`` to the end, noting how long each stage module's process ran."""
    process = subprocess.Popen(command, cwd=root, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: dict[str, list[float]] = {}
    while process.poll() is None:
        now = time.monotonic()
        for _, _, module, _ in STAGES:
            if stage_running(f"stages.{module}".encode(), root):
                seen.setdefault(module, [now, now])[1] = now
        time.sleep(0.02)
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed")
    return {module: end - start for module, (start, end) in seen.items()}


def kill_at(command: list[str], root: Path, module: str, delay: float) -> bool:
    """SIGKILL ``command``'s process group ``delay`` s into stage ``module``; False if it ended first."""
    process = subprocess.Popen(command, cwd=root, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    while not stage_running(f"stages.{module}".encode(), root):
        if process.poll() is not None:
            return False
        time.sleep(0.01)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        if not stage_running(f"stages.{module}".encode(), root):
            break
        time.sleep(0.01)
    still_running = stage_running(f"stages.{module}".encode(), root)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return still_running


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["dvc", "snakemake", "both"], default="both")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    engines = ["dvc", "snakemake"] if args.engine == "both" else [args.engine]
    failures = 0
    with tempfile.TemporaryDirectory() as scratch:
        reference = project_clone(Path(scratch) / "reference")
        durations = timed_run(["dvc", "repro"], reference)
        expected = metrics(reference)
        print("uninterrupted reference: " + ", ".join(f"{m} {s:.1f} s" for m, s in durations.items()))
        for engine in engines:
            root = project_clone(Path(scratch) / engine)
            run(["dvc", "repro"] if engine == "dvc" else ["snakemake", "--cores", "2"], root, timeout=900)
            fresh = metrics(root) == expected
            failures += not fresh
            print(f"{engine:<9} a second fresh run: metrics {'byte-identical' if fresh else 'DIFFERENT'}")
            for dvc_stage, rule, module, output in STAGES:
                fraction = rng.uniform(0.05, 0.95)
                forced = (["dvc", "repro", "--force", "--downstream", dvc_stage] if engine == "dvc"
                          else ["snakemake", "--cores", "2", "--forcerun", rule])
                killed = kill_at(forced, root, module, fraction * durations.get(module, 1.0))
                # Outputs are renamed into place whole: one that exists was finished before the kill.
                finished = (root / output).exists()
                started = time.perf_counter()
                flagged = ""
                if engine == "dvc":
                    run(["dvc", "repro", "--no-run-cache"], root, timeout=900)
                else:
                    run(["snakemake", "--unlock"], root)
                    rerun = subprocess.run(["snakemake", "--cores", "2"], cwd=root, env=ENV, capture_output=True,
                                           text=True, timeout=900)
                    if rerun.returncode != 0:
                        if "IncompleteFilesException" not in rerun.stderr:
                            sys.exit(f"snakemake failed:\n{rerun.stderr[-3000:]}")
                        flagged = "; Snakemake flagged its output incomplete: --rerun-incomplete"
                        run(["snakemake", "--cores", "2", "--rerun-incomplete"], root, timeout=900)
                same = metrics(root) == expected
                failures += not same
                print(f"{engine:<9} {dvc_stage:<13} killed at {100 * fraction:3.0f}% of the stage "
                      f"({'mid-stage' if killed else 'it had already ended'}); output under its name after the kill: "
                      f"{'yes, complete' if finished else 'none'}{flagged}; "
                      f"rerun {time.perf_counter() - started:5.1f} s; "
                      f"metrics {'byte-identical' if same else 'DIFFERENT'}")
    print("all identical" if not failures else f"{failures} FAILURE(S)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
