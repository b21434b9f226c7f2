"""A tiny real pipeline: `dvc repro` in a temporary git clone, the same with `snakemake --cores 2`,
then a parameter change through `dvc exp run -S` and `dvc params diff` / `dvc metrics diff`."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT, tiny_params, write_params

BIN = Path(sys.executable).parent
PROJECT_FILES = ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", ".dvc/config", ".dvc/.gitignore",
                 "workflow", "stages", "zsseg")
METRIC_KEYS = {"pixel_acc", "mean_acc", "miou", "seen_miou", "unseen_miou", "hiou", "per_class_iou"}


def run(command, cwd, timeout=240):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "TQDM_DISABLE": "1",
           "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


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


@pytest.fixture(scope="module")
def dvc_run(tmp_path_factory):
    root = project_clone(tmp_path_factory.mktemp("dvc") / "project")
    run(["dvc", "repro"], root)
    return root


@pytest.fixture(scope="module")
def snakemake_run(tmp_path_factory):
    root = project_clone(tmp_path_factory.mktemp("snakemake") / "project")
    run(["snakemake", "--cores", "2"], root)
    return root


def test_dvc_repro_writes_every_declared_output(dvc_run):
    metrics = read_metrics(dvc_run)
    assert set(metrics) == {"round_0.json", "round_1.json", "self_training.json"}
    for values in metrics.values():
        assert METRIC_KEYS <= set(values)
        assert 0.0 <= values["pixel_acc"] <= 100.0
        assert len(values["per_class_iou"]) == 17
    for path in ("data/features/train.h5", "data/features/val.h5", "data/rounds/1/pseudo_features.h5",
                 "data/confusion/round_1.csv", "data/confusion/self_training.csv", "data/self_training/classifier.pt",
                 "data/report/summary.csv", "data/report/methods.csv", "data/report/summary.md",
                 "data/report/predictions.png", "data/report/rounds.png"):
        assert (dvc_run / path).is_file(), path
    lock = (dvc_run / "dvc.lock").read_text()
    assert "round@1:" in lock and "round_0:" in lock
    assert "up to date" in run(["dvc", "status"], dvc_run).lower() or "unchanged" in run(["dvc", "status"], dvc_run)


def test_snakemake_produces_the_same_metrics(dvc_run, snakemake_run):
    assert read_metrics(snakemake_run) == read_metrics(dvc_run)
    assert (snakemake_run / "data/report/summary.csv").read_text() == (dvc_run / "data/report/summary.csv").read_text()


def test_exp_run_and_diffs(dvc_run):
    run(["git", "add", "-A"], dvc_run)
    run(["git", "commit", "-q", "-m", "baseline results"], dvc_run)
    run(["dvc", "exp", "run", "-S", "recursion.generator_steps=9"], dvc_run)
    params_diff = json.loads(run(["dvc", "params", "diff", "--json"], dvc_run))
    change = params_diff["params.yaml"]["recursion.generator_steps"]
    assert (change["old"], change["new"]) == (5, 9)
    metrics_diff = json.loads(run(["dvc", "metrics", "diff", "--json"], dvc_run))
    assert "data/metrics/round_1.json" in metrics_diff
    # Round 0 does not depend on the recursion: DVC kept it, so its metrics are unchanged.
    assert "hiou" not in metrics_diff.get("data/metrics/round_0.json", {})
    shown = json.loads(run(["dvc", "exp", "show", "--json"], dvc_run))
    assert shown


def test_declared_plots_render(dvc_run):
    plots = json.loads(run(["dvc", "plots", "show", "--json"], dvc_run))
    rendered = json.dumps(plots)
    assert "data/report/summary.csv" in rendered and "unseen_miou" in rendered
    assert "data/report/predictions.png" in rendered
    assert "errors" not in plots or not plots["errors"]


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    root = project_clone(tmp_path_factory.mktemp("grid") / "project", **{"table.k_values": [2, 4]})
    run(["snakemake", "--cores", "2", "table"], root, timeout=600)
    return root


def test_grid_table_has_a_row_per_k_method_and_round(grid_run):
    import pandas as pd

    frame = pd.read_csv(grid_run / "data" / "table" / "summary.csv")
    assert list(frame.columns) == ["dataset", "k", "method", "round", "pixel_acc", "mean_acc", "seen_miou",
                                   "unseen_miou", "miou", "hiou"]
    assert [tuple(row) for row in frame[["k", "method", "round"]].itertuples(index=False)] == [
        (2, "ZS3Net", 0), (2, "ZS5Net", 0), (2, "ZS-MMD", 1), (4, "ZS3Net", 0), (4, "ZS5Net", 0), (4, "ZS-MMD", 1)]
    assert set(frame["dataset"]) == {"demo"}
    for name in ("summary.md", "rounds.png", "methods.png", "predictions_k4.png"):
        assert (grid_run / "data" / "table" / name).is_file(), name
    # K-independent stages ran once; per-K stages wrote under data/k<K>/.
    assert (grid_run / "data" / "k2" / "backbone" / "network.pt").is_file()
    assert not (grid_run / "data" / "backbone").exists()


def test_grid_cells_equal_the_single_runs(grid_run, snakemake_run):
    import pandas as pd

    # The single run has dataset.unseen = 4 (the dvc run is not used: another test runs an experiment in it).
    single = read_metrics(snakemake_run)
    for name, values in single.items():
        assert (grid_run / "data" / "k4" / "metrics" / name).read_text() == \
            (snakemake_run / "data" / "metrics" / name).read_text(), name
    frame = pd.read_csv(grid_run / "data" / "table" / "summary.csv")
    cell = frame[(frame["k"] == 4) & (frame["method"] == "ZS-MMD") & (frame["round"] == 1)].iloc[0]
    assert cell["hiou"] == pytest.approx(single["round_1.json"]["hiou"])
    k2 = json.loads((grid_run / "data" / "k2" / "metrics" / "round_0.json").read_text())
    assert sum(value is not None for value in k2["per_class_iou"].values()) >= 2
    assert json.loads((grid_run / "data" / "k2" / "metrics" / "round_0.json").read_text()) != single["round_0.json"]
