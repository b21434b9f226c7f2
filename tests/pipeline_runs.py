"""Tiny real pipelines in temporary git clones of the project: helpers shared by the tests."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import PROJECT_ROOT, tiny_params, write_params

BIN = Path(sys.executable).parent
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
                   timeout=600) -> None:
    """Run ``command`` and SIGKILL its whole process group ``delay`` s after ``stages.STAGE`` started
    (or, ``while_writing``, after that file appeared in ``output``'s partial directory): a crash in the
    middle of that stage."""
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
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not target.exists(), f"{output} was complete before the kill: nothing was interrupted"


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


def snakemake_chain(base: Path) -> dict[str, Path]:
    """`snakemake --cores 2` killed in the middle of round 0, unlocked and rerun with `--cores 1`;
    then `snakemake --cores 2 table` (K = 2, 4) beside it, and `snakemake table --report`."""
    root = project_clone(base / "snakemake")
    kill_mid_stage(["snakemake", "--cores", "2"], root, "round_0", "data/rounds/0", delay=0.5)
    # A killed Snakemake leaves its working-directory lock behind; --unlock is its documented remedy.
    run(["snakemake", "--unlock"], root)
    run(["snakemake", "--cores", "1"], root)
    shared = ("data/demo", "data/dataset", "data/embeddings.npz")
    before = {path: (root / path).stat().st_mtime_ns for path in shared}
    run(["snakemake", "--cores", "2", "table"], root)
    after = {path: (root / path).stat().st_mtime_ns for path in shared}
    (root / "shared_stages_rerun.json").write_text(json.dumps([path for path in shared if before[path] != after[path]]))
    run(["snakemake", "table", "--report", "data/table/report.html"], root)
    return {"snakemake": root}
