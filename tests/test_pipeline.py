"""Tiny real pipelines: `dvc repro` and `snakemake` (each killed mid-stage and rerun), experiments
through `dvc exp run -S` / `--queue` with the params, metrics and plots diffs, and the K grid."""

import inspect
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT_ROOT
from pipeline_runs import read_metrics, run
from zsseg.methods import METHODS, results

METRIC_KEYS = {"pixel_acc", "mean_acc", "miou", "seen_miou", "unseen_miou", "hiou", "per_class_iou"}


def test_dvc_repro_writes_every_declared_output(dvc_run):
    metrics = read_metrics(dvc_run)
    assert set(metrics) == {f"{result.metrics}.json" for result in results([1])}
    assert {"round_0.json", "round_1.json", "self_training.json"} <= set(metrics)
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
    assert "recursive_round@1:" in lock and "round_0:" in lock
    assert "up to date" in run(["dvc", "status"], dvc_run).lower() or "unchanged" in run(["dvc", "status"], dvc_run)


def test_snakemake_produces_the_same_metrics(dvc_run, snakemake_run):
    assert read_metrics(snakemake_run) == read_metrics(dvc_run)
    assert (snakemake_run / "data/report/summary.csv").read_text() == (dvc_run / "data/report/summary.csv").read_text()


def dvc_stale(root) -> set[str]:
    return set(json.loads(run(["dvc", "status", "--json"], root)))


def snakemake_plan(root) -> set[str]:
    """The rules a dry run would run, without the target rule `all`."""
    return set(re.findall(r"^rule (\w+):", run(["snakemake", "-n"], root), flags=re.M)) - {"all"}


def test_an_edit_to_code_only_evaluate_runs_reruns_evaluate(tmp_path, dvc_run, snakemake_run):
    """The stale-metrics bug: edit a function that only the evaluate stage imports. `dvc status` must list
    evaluate (its metrics feed the report, which DVC reruns after it), and Snakemake must plan evaluate and
    the report; nothing upstream."""
    from zsseg.evaluation import evaluate_classifier

    source = Path(inspect.getsourcefile(evaluate_classifier)).relative_to(PROJECT_ROOT)
    assert [stage for stage, body in yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"].items()
            if str(source) in body.get("do", body)["deps"]] == ["evaluate"]
    for name, original in (("dvc", dvc_run), ("snakemake", snakemake_run)):
        root = tmp_path / name
        shutil.copytree(original, root, symlinks=True)
        assert (dvc_stale(root) if name == "dvc" else snakemake_plan(root)) == set(), name
        path = root / source
        text = path.read_text()
        path.write_text(text.replace('    num_classes = len(cache.class_names)\n',
                                     '    num_classes = len(cache.class_names)  # every class competes\n', 1))
        assert path.read_text() != text
        if name == "dvc":
            assert dvc_stale(root) == {"evaluate"}
        else:
            assert snakemake_plan(root) == {"evaluate", "report"}


def test_a_param_only_report_reads_reruns_only_report(tmp_path, dvc_run, snakemake_run):
    for name, original in (("dvc", dvc_run), ("snakemake", snakemake_run)):
        root = tmp_path / name
        shutil.copytree(original, root, symlinks=True)
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["report"]["grid_images"] += 1
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert (dvc_stale(root) if name == "dvc" else snakemake_plan(root)) == {"report"}, name


def test_exp_run_and_diffs(dvc_run):
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
    # The declared plots compare the experiment (the workspace) with the committed baseline.
    plots = json.loads(run(["dvc", "plots", "diff", "--json"], dvc_run))
    rendered = json.dumps(plots)
    assert "workspace" in rendered and "HEAD" in rendered
    assert "data/report/summary.csv" in rendered and "data/report/methods.csv" in rendered


def test_declared_plots_render(dvc_run):
    plots = json.loads(run(["dvc", "plots", "show", "--json"], dvc_run))
    rendered = json.dumps(plots)
    assert "data/report/summary.csv" in rendered and "unseen_miou" in rendered
    assert "data/report/predictions.png" in rendered and "data/report/methods.csv" in rendered
    assert "errors" not in plots or not plots["errors"]


def experiments(shown: list) -> list[dict]:
    """Every experiment of `dvc exp show --json` as {"name", "params", "metrics"}."""
    found = []
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            for revision in experiment["revs"]:
                data = revision.get("data") or {}
                found.append({"name": revision.get("name"),
                              "params": data.get("params", {}).get("params.yaml", {}).get("data", {}),
                              "metrics": {path: value.get("data", {})
                                          for path, value in (data.get("metrics") or {}).items()}})
    return found


def test_exp_queue_over_k(tiny_runs):
    """The DVC form of the K grid: one queued experiment per K, run by queue workers, shown side by side."""
    root = tiny_runs["queue"]
    assert (root / "queued_status.txt").read_text().count("Queued") == 2
    status = (root / "final_status.txt").read_text()
    assert status.count("Success") == 2, status
    done = {entry["params"]["dataset"]["unseen"]: entry
            for entry in experiments(json.loads(run(["dvc", "exp", "show", "--json"], root)))}
    assert set(done) == {2, 4}
    baseline = read_metrics(root)  # the committed baseline: another test runs an experiment in dvc_run
    for name in ("round_0.json", "round_1.json", "self_training.json"):
        assert done[4]["metrics"][f"data/metrics/{name}"]["hiou"] == baseline[name]["hiou"]
    assert done[2]["metrics"]["data/metrics/round_0.json"] != done[4]["metrics"]["data/metrics/round_0.json"]


@pytest.fixture(scope="module")
def grid_run(snakemake_run):
    """`snakemake --cores 2 table` (K = 2, 4) and its report, run beside the single split."""
    return snakemake_run


def test_grid_table_has_a_row_per_k_method_and_round(grid_run):
    import pandas as pd

    frame = pd.read_csv(grid_run / "data" / "table" / "summary.csv")
    assert list(frame.columns) == ["dataset", "k", "method", "round", "pixel_acc", "mean_acc", "seen_miou",
                                   "unseen_miou", "miou", "hiou", "mined_classes"]
    mined = frame[frame["method"] == "recursive ZS-MMD"]["mined_classes"]
    assert (mined >= 1).all() and frame[frame["method"] == "ZS3Net"]["mined_classes"].isna().all()
    assert [tuple(row) for row in frame[["k", "method", "round"]].itertuples(index=False)] == [
        (k, result.method.name, result.round) for k in (2, 4) for result in results([1])]
    assert {("ZS3Net", 0), ("ZS5Net", 0), ("recursive ZS-MMD", 1)} <= set(zip(frame["method"], frame["round"]))
    assert set(frame["dataset"]) == {"demo"}
    for name in ("summary.md", "rounds.png", "methods.png", "predictions_k4.png"):
        assert (grid_run / "data" / "table" / name).is_file(), name
    # Per-K stages wrote under data/k<K>/, each with the log file its rule declares.
    for k in (2, 4):
        assert (grid_run / "data" / f"k{k}" / "backbone" / "network.pt").is_file()
        for log in ("backbone", "features", "recursive_round_1", "evaluate",
                    *(method.stage for method in METHODS if not method.per_round)):
            assert (grid_run / "data" / f"k{k}" / "logs" / f"{log}.log").is_file(), (k, log)
    assert not (grid_run / "data" / "k2" / "dataset").exists() and not (grid_run / "data" / "k2" / "demo").exists()
    assert json.loads((grid_run / "shared_stages_rerun.json").read_text()) == [], "K-independent stages run once"
    assert (grid_run / "data" / "logs" / "table.log").is_file()


def test_snakemake_report_bundles_the_table_with_captions(grid_run):
    report = (grid_run / "data" / "table" / "report.html").read_text()
    for name in ("rounds.png", "methods.png", "predictions_k4.png", "summary.csv"):
        assert name in report, name
    assert "one line per number of unseen classes K" in report  # the caption of rounds.png


def test_grid_cells_equal_the_single_runs(grid_run, snakemake_run):
    import pandas as pd

    # The single run has dataset.unseen = 4 (the dvc run is not used: another test runs an experiment in it).
    single = read_metrics(snakemake_run)
    for name, values in single.items():
        assert (grid_run / "data" / "k4" / "metrics" / name).read_text() == \
            (snakemake_run / "data" / "metrics" / name).read_text(), name
    frame = pd.read_csv(grid_run / "data" / "table" / "summary.csv")
    cell = frame[(frame["k"] == 4) & (frame["method"] == "recursive ZS-MMD") & (frame["round"] == 1)].iloc[0]
    assert cell["hiou"] == pytest.approx(single["round_1.json"]["hiou"])
    k2 = json.loads((grid_run / "data" / "k2" / "metrics" / "round_0.json").read_text())
    assert sum(value is not None for value in k2["per_class_iou"].values()) >= 2
    assert json.loads((grid_run / "data" / "k2" / "metrics" / "round_0.json").read_text()) != single["round_0.json"]


def test_metrics_are_byte_identical_across_runs_engines_cores_and_kills(dvc_run, snakemake_run, grid_run):
    """Three independent tiny runs with the same params: `dvc repro` killed mid-features and rerun,
    `snakemake` killed mid-round-0 and rerun with `--cores 1`, and the uninterrupted K = 4 cell of
    the grid under `snakemake --cores 2`. Every metrics file is byte-identical."""
    names = sorted(path.name for path in (grid_run / "data" / "k4" / "metrics").glob("*.json"))
    assert names == sorted(f"{result.metrics}.json" for result in results([1]))
    for name in names:
        committed = run(["git", "show", f"HEAD:data/metrics/{name}"], dvc_run)
        assert (snakemake_run / "data" / "metrics" / name).read_text() == committed, name
        assert (grid_run / "data" / "k4" / "metrics" / name).read_text() == committed, name
    assert not list((dvc_run / "data").glob(".*.partial-*")), "the rerun cleared the killed run's leftovers"
