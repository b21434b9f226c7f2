"""The README's commands, in the order it gives them, as a new user types them: in a clean copy of the
project, in a shell that starts without the virtual environment on its PATH.

Two departures keep it to minutes, and both are said here: params.yaml is shrunk to the tests' tiny
pipeline (with one grid cell), and the copy's `.venv` is this suite's own environment (a link), so that `make run` finds it
installed instead of installing a second one; CI's `make test` has just installed it from scratch on a
fresh clone. `make test` itself is not run: this test is part of it.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT, tiny_params, write_params

pytestmark = pytest.mark.pipeline

VENV = Path(sys.executable).parents[1]


def readme_commands() -> list[str]:
    """Every line of the README's bash blocks, in order, without comments."""
    blocks = re.findall(r"```bash\n(.*?)```", (PROJECT_ROOT / "README.md").read_text(), flags=re.S)
    lines = [re.sub(r"\s+#.*$", "", line).strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def clean_copy(destination: Path) -> Path:
    """The files git would put in a clone (tracked, and untracked but not ignored), with their times."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=PROJECT_ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = PROJECT_ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def test_the_readme_commands_work_in_order_from_a_clean_copy(tmp_path):
    commands = readme_commands()
    assert commands[:3] == ["make run", "make test", "source .venv/bin/activate"], commands
    assert any(command.startswith("dvc ") for command in commands)
    assert any(command.startswith("snakemake ") for command in commands)
    assert any(command.startswith("zsseg predict ") for command in commands)
    assert "zsseg plan" in commands
    root = clean_copy(tmp_path / "project")
    (root / ".venv").symlink_to(VENV)
    # One cell, K = 2 and seed 0: the grid's statistics over K and seeds are tested on the tiny runs
    # (tests/test_pipeline.py).
    write_params(root / "params.yaml", tiny_params(**{"table.k_values": [2], "table.seeds": [0]}))
    environment = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    environment["PATH"] = os.pathsep.join(entry for entry in environment["PATH"].split(os.pathsep)
                                          if not Path(entry).resolve().is_relative_to(VENV.resolve()))
    environment.update({"TQDM_DISABLE": "1", "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
                        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"})
    assert subprocess.run(["bash", "-c", "command -v dvc snakemake zsseg"], env=environment,
                          capture_output=True).returncode != 0, "the shell must start without the environment"
    for setup in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "clean clone"]):
        subprocess.run(setup, cwd=root, env=environment, check=True, capture_output=True)
    up_to_date = subprocess.run(["make", "-q", ".venv/.installed"], cwd=root, env=environment)
    assert up_to_date.returncode == 0, "the environment is older than requirements.txt: run `make install` first"
    script = "\n".join(["set -euo pipefail", *(f"echo '+ {command}'; {command}" for command in commands
                                                 if command != "make test")])
    result = subprocess.run(["bash", "-c", script], cwd=root, env=environment, capture_output=True, text=True,
                            timeout=1200)
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert "grid cells still to run need about" in result.stdout   # zsseg plan, before the grid
    assert (root / "data" / "report" / "summary.md").is_file()
    assert (root / "data" / "table" / "summary.csv").is_file()
    prediction = json.loads((root / "predictions" / "val_00000.json").read_text())
    assert prediction["classes"] == ["background", "red circle", "purple star"]
    # The experiment is recorded with the value it was run with.
    shown = subprocess.run(["bash", "-c", "source .venv/bin/activate && dvc exp show --json"], cwd=root,
                           env=environment, capture_output=True, text=True, check=True).stdout
    assert '"zs_mmd_lambda": 0.5' in shown
