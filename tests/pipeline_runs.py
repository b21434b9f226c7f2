"""Tiny real pipelines in temporary git clones of the project: helpers shared by the tests."""

import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import yaml

from conftest import PROJECT_ROOT, tiny_params, write_params

BIN = Path(sys.executable).parent
BENCH = PROJECT_ROOT / "bench"
PROJECT_FILES = ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", ".dvc/config", ".dvc/.gitignore",
                 "workflow", "stages", "zsseg")


ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "TQDM_DISABLE": "1",
       "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
       "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"}


def run(command, cwd, timeout=600):
    result = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def stage_running(module: str, cwd: Path) -> bool:
    """Whether ``python -m MODULE`` runs in ``cwd`` (Linux /proc)."""
    for entry in Path("/proc").iterdir():
        try:
            if (entry.name.isdigit() and module in (entry / "cmdline").read_bytes().split(b"\0")
                    and os.readlink(entry / "cwd") == str(cwd)):
                return True
        except OSError:
            continue
    return False


def kill_mid_stage(command, cwd: Path, stage: str, output: str, delay: float, while_writing: str | None = None,
                   timeout=600, until=None) -> None:
    """Run ``command`` and SIGKILL its whole process group ``delay`` s after ``stages.STAGE`` started
    (or, ``while_writing``, after that file appeared in ``output``'s partial directory; or once ``until()``
    is true): a crash in the middle of that stage."""
    target = cwd / output
    process = subprocess.Popen(command, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + timeout

    def wait_for(condition, what):
        while not condition():
            assert process.poll() is None, f"{' '.join(command)} ended before {what}"
            assert time.monotonic() < deadline, f"{what} never happened"
            time.sleep(0.02)

    wait_for(lambda: stage_running(f"stages.{stage}".encode(), cwd), f"stage {stage} started")
    if while_writing:
        wait_for(lambda: bool(list(target.parent.glob(f".{target.name}.partial-*/{while_writing}"))),
                 f"{output}/{while_writing} was being written")
    if until:
        wait_for(until, f"the condition {until.__qualname__} held")
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not target.exists(), f"{output} was complete before the kill: nothing was interrupted"


def linked_project(project: Path, data: dict) -> Path:
    """A project directory whose code is the checkout's (linked) and whose params.yaml is ``data``."""
    project.mkdir(exist_ok=True)
    for name in ("zsseg", "stages", "workflow"):
        if not (project / name).exists():
            (project / name).symlink_to(PROJECT_ROOT / name)
    (project / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return project


def dry_run(project: Path, data: dict, *arguments: str) -> dict[tuple[str, str], dict]:
    """`snakemake -n -p --forceall table all` in ``project`` (the project's code, ``data`` as params.yaml):
    per job, (rule, wildcards) -> its resources, threads, shell command and benchmark file (None: none)."""
    linked_project(project, data)
    output = subprocess.run([str(BIN / "snakemake"), "-n", "-p", "--forceall", "table", "all", *arguments],
                            cwd=project, capture_output=True, text=True, check=True).stdout
    jobs = {}
    for block in output.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, flags=re.M)
        threads = re.search(r"^\s+threads: (\d+)$", block, flags=re.M)
        benchmark = re.search(r"^\s+benchmark: (.*)$", block, flags=re.M)
        resources = dict(item.split("=", 1) for item in
                         re.search(r"^\s+resources: (.*)$", block, flags=re.M).group(1).split(", "))
        jobs[(rule, wildcards.group(1) if wildcards else "")] = {
            "resources": {name: int(value) if value.isdigit() else value for name, value in resources.items()},
            "threads": int(threads.group(1)) if threads else 1,
            "command": re.search(r"^Shell command: (.*)$", block, flags=re.M).group(1),
            "benchmark": benchmark.group(1) if benchmark else None}
    return jobs


def bench_script(name: str) -> ModuleType:
    """``bench/NAME.py`` as a module, with bench/ on the path as when it runs (its scripts import each other)."""
    if str(BENCH) not in sys.path:
        sys.path.append(str(BENCH))
    return importlib.import_module(name)


def project_clone(destination: Path, **overrides) -> Path:
    """A fresh git repository holding the project's pipeline files and tiny params."""
    destination.mkdir()
    for name in PROJECT_FILES:
        source = PROJECT_ROOT / name
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    write_params(destination / "params.yaml", tiny_params(**overrides))
    run(["git", "init", "-q"], destination)
    run(["git", "add", "-A"], destination)
    run(["git", "commit", "-q", "-m", "tiny pipeline"], destination)
    return destination


def read_metrics(root: Path) -> dict:
    return {path.name: json.loads(path.read_text()) for path in sorted((root / "data" / "metrics").glob("*.json"))}


def dvc_chain(base: Path) -> dict[str, Path]:
    """`dvc repro` killed while the features stage writes its HDF5 caches, rerun to the end and
    committed; then, in a clone of that commit, `dvc exp run --queue` over K = 2, 4 run by
    `dvc queue start -j 1`."""
    root = project_clone(base / "dvc")
    kill_mid_stage(["dvc", "repro"], root, "features", "data/features", delay=0.0, while_writing="pool.h5")
    run(["dvc", "repro"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "-m", "baseline results"], root)
    queue = base / "queue"
    run(["git", "clone", "-q", str(root), str(queue)], base)
    # Share the baseline's cache (and so its run cache): the K = 4 experiment repeats the baseline.
    run(["dvc", "cache", "dir", "--local", str(root / ".dvc" / "cache")], queue)
    run(["dvc", "exp", "run", "--queue", "-S", "dataset.unseen=range(2,5,2)"], queue)
    queued = run(["dvc", "queue", "status"], queue)
    run(["dvc", "queue", "start", "-j", "1"], queue)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], queue)
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(1)
    run(["dvc", "queue", "stop"], queue)
    (queue / "queued_status.txt").write_text(queued)
    (queue / "final_status.txt").write_text(status)
    return {"dvc": root, "queue": queue}


# The made-up limits of the grid's run: every job asks for 1000 MB (a GPU stage's also for one GPU: device
# auto, which runs on the CPU here), and four cores would run four jobs at once without them.
MADE_UP_LIMITS = {"mem_mb": 3000, "gpu": 2}
JOB_MEMORY = {"resources.mem_mb": 1000, "resources.stages": {}, "device": "auto"}


def snakemake_chain(base: Path) -> dict[str, Path]:
    """`snakemake --cores 2` killed in the middle of round 0, unlocked and rerun with `--cores 1 --rerun-incomplete`;
    then `snakemake --cores 4 --resources ... table` (K = 2, 4) beside it under made-up limits (its log in
    table_run.log), and the reports of the grid (`snakemake table --report`) and of the single run."""
    root = project_clone(base / "snakemake", **JOB_MEMORY)
    kill_mid_stage(["snakemake", "--cores", "2"], root, "round_0", "data/rounds/0", delay=0.5)
    # A killed Snakemake leaves its working-directory lock behind; --unlock is its documented remedy. A job
    # running beside round 0 (ceiling_labels, say) may have renamed its output into place just before the
    # kill, unrecorded: Snakemake then calls it incomplete, and --rerun-incomplete is the documented remedy
    # (docs/reliability.md). Without it this rerun failed now and then under load.
    run(["snakemake", "--unlock"], root)
    run(["snakemake", "--cores", "1", "--rerun-incomplete"], root)
    shared = ("data/demo", "data/dataset", "data/embeddings.npz")
    before = {path: (root / path).stat().st_mtime_ns for path in shared}
    limits = [f"{name}={amount}" for name, amount in MADE_UP_LIMITS.items()]
    result = subprocess.run(["snakemake", "--cores", "4", "table", "--resources", *limits], cwd=root, env=ENV,
                            capture_output=True, text=True, timeout=900)
    (root / "table_run.log").write_text(result.stderr)
    assert result.returncode == 0, f"snakemake table failed:\n{result.stderr[-3000:]}"
    after = {path: (root / path).stat().st_mtime_ns for path in shared}
    (root / "shared_stages_rerun.json").write_text(json.dumps([path for path in shared if before[path] != after[path]]))
    run(["snakemake", "table", "--report", "data/table/report.html"], root)
    run(["snakemake", "--report", "data/report.html"], root)
    return {"snakemake": root}


def held_resources(log: str) -> list[dict[str, int]]:
    """What Snakemake's scheduler held after each job started or finished, from its log, whose entries come
    in the order of its own bookkeeping: the running jobs' count and their summed `mem_mb` and `gpu`."""
    running: dict[str, dict[str, int]] = {}
    held = []
    for entry in re.split(r"^\[[^\]\n]+\]$", log, flags=re.M):
        finished = re.search(r"^Finished jobid: (\d+)", entry, flags=re.M)
        started = re.search(r"^(?:local)?rule \w+:$", entry, flags=re.M)
        if finished:
            del running[finished.group(1)]
        elif started:
            job = re.search(r"^\s+jobid: (\d+)$", entry, flags=re.M).group(1)
            listed = re.search(r"^\s+resources: (.*)$", entry, flags=re.M).group(1)
            resources = dict(item.split("=", 1) for item in listed.split(", "))
            running[job] = {name: int(resources.get(name, 0)) for name in ("mem_mb", "gpu")}
        else:
            continue
        held.append({"jobs": len(running), **{name: sum(job[name] for job in running.values())
                                                for name in ("mem_mb", "gpu")}})
    return held
