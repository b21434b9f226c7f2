"""The K grid's plan: one backbone per cell or per K (table.backbone_per_seed)."""

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT_ROOT
from pipeline_runs import dry_run, linked_project


def grid_params(backbone_per_seed: bool) -> dict:
    data = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    data["table"].update(k_values=[2, 4, 6, 8, 10], seeds=[0, 1, 2], backbone_per_seed=backbone_per_seed)
    return data


# The dry runs of the grid, with a backbone per cell and per K, on CUDA, as a cluster sees their jobs.
@pytest.fixture(scope="module")
def grid_dry_runs(tmp_path_factory) -> dict:
    runs = {}
    for backbone_per_seed in (True, False):
        data = grid_params(backbone_per_seed)
        data["device"] = "cuda"
        project = tmp_path_factory.mktemp(f"per_seed_{backbone_per_seed}") / "project"
        runs[backbone_per_seed] = (project, data, dry_run(project, data, "--executor", "slurm", "--jobs", "10"))
    return runs


def test_seeds_share_one_backbone_and_cache_per_k_when_asked(grid_dry_runs):
    per_seed, shared = grid_dry_runs[True][2], grid_dry_runs[False][2]
    per_seed_counts = Counter(rule for rule, _ in per_seed)
    shared_counts = Counter(rule for rule, _ in shared)
    assert per_seed_counts["backbone_k"] == per_seed_counts["features_k"] == 15
    assert shared_counts["backbone_k"] == shared_counts["features_k"] == 5
    # Every other job of the grid is planned in both.
    assert {rule: count for rule, count in shared_counts.items() if rule not in ("backbone_k", "features_k")} == \
        {rule: count for rule, count in per_seed_counts.items() if rule not in ("backbone_k", "features_k")}
    # The first seed's cells run the very same commands either way: their metrics are the per-seed grid's.
    first_seed = {job: spec["command"] for job, spec in per_seed.items() if "seed=0" in job[1].split(", ")}
    assert len(first_seed) == 5 * 14   # 14 jobs per cell, 3 of them recursive rounds
    assert first_seed == {job: spec["command"] for job, spec in shared.items() if "seed=0" in job[1].split(", ")}
    # The other seeds read the first seed's backbone and cache, and write their own results.
    evaluate = shared[("evaluate_k", "k=6, seed=2")]["command"]
    assert "--backbone data/k6/s0/backbone" in evaluate and "--output data/k6/s2/metrics" in evaluate
    samples = shared[("samples_k", "k=6, seed=2")]["command"]
    assert "--features data/k6/s0/features" in samples and "--output data/k6/s2/samples.h5" in samples
    assert "--backbone data/k6/s2/backbone" in per_seed[("evaluate_k", "k=6, seed=2")]["command"]


def plan(project, data, *arguments) -> str:
    linked_project(project, data)
    return subprocess.run([sys.executable, "-m", "zsseg.plan", *arguments], cwd=project, capture_output=True,
                          text=True, check=True).stdout


def test_the_plan_counts_every_job_and_its_gpu_hours_before_launch(grid_dry_runs):
    """`zsseg plan --from-scratch` against the dry run's own jobs and the hours summed by hand."""
    for backbone_per_seed, (project, data, jobs) in grid_dry_runs.items():
        printed = plan(project, data, "--from-scratch", "table", "all")
        rows = {line.split()[0]: line.split() for line in printed.splitlines() if re.match(r"^\w+\s+\d+\s", line)}
        by_hand = Counter(rule for rule, _ in jobs if rule != "all")
        assert {rule: int(row[1]) for rule, row in rows.items() if rule != "total"} == by_hand
        gpu_hours = sum(job["resources"].get("gpu", 0) * job["resources"]["runtime"] / 60
                        for (rule, _), job in jobs.items() if rule != "all")
        assert float(rows["total"][-1]) == pytest.approx(gpu_hours, abs=0.05)
        assert f"at most {gpu_hours:.1f} GPU-hours" in printed
        assert int(rows["backbone_k"][1]) == (15 if backbone_per_seed else 5)
    project, data, _ = grid_dry_runs[False]
    data = {**data, "device": "cpu"}
    assert "0 jobs ask for a GPU: at most 0.0 GPU-hours" in plan(project, data, "--from-scratch")


def test_the_plan_predicts_the_disk_that_disk_check_will_check(tmp_path, monkeypatch):
    from stages import demo, disk_check, prepare
    from zsseg.config import load_params
    from zsseg.plan import disk_line

    data = grid_params(False)
    data["demo"].update(train_images=40, val_images=8, dev_images=8, image_size=64)
    monkeypatch.chdir(linked_project(tmp_path / "project", data))
    params = load_params("params.yaml")
    assert "Disk: not predicted: data/dataset is not there yet" in disk_line(params, Path("data"))
    demo.main(["--output", "data/demo"])
    prepare.main(["--output", "data/dataset"])
    disk_check.main(["--dataset", "data/dataset", "--grid", "data", "--output", str(tmp_path / "disk_check.json")])
    checked = json.loads((tmp_path / "disk_check.json").read_text())
    assert checked["cells"] == 15
    assert f"the 15 grid cells still to run need about {checked['need_bytes'] / 1e9:.1f} GB" in \
        disk_line(params, Path("data"))
