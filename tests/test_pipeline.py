"""Tiny real pipelines: `dvc repro` and `snakemake` (each killed mid-stage and rerun), experiments
through `dvc exp run -S` / `--queue` with the params, metrics and plots diffs, and the K grid."""

import csv
import inspect
import io
import json
import re
import shlex
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import PROJECT_ROOT
from pipeline_runs import MADE_UP_LIMITS, bench_script, dry_run, held_resources, read_metrics, run
from zsseg.methods import METHODS, results
from zsseg.pipeline import snakemake_rules
from zsseg.report import FIGURE_DPI, SMALLEST_TEXT_PT

METRIC_KEYS = {"pixel_acc", "mean_acc", "miou", "seen_miou", "unseen_miou", "hiou", "per_class_iou"}


def test_dvc_repro_writes_every_declared_output(dvc_run):
    metrics = read_metrics(dvc_run)
    assert set(metrics) == {f"{result.metrics}.json" for result in results([1])}
    assert {"round_0.json", "round_1.json", "self_training.json"} <= set(metrics)
    for values in metrics.values():
        assert METRIC_KEYS <= set(values)
        assert 0.0 <= values["pixel_acc"] <= 100.0
        assert len(values["per_class_iou"]) == 17
    for path in ("data/features/labelled.h5", "data/features/pool.h5", "data/samples.h5",
                 "data/rounds/1/pseudo_features.h5",
                 "data/confusion/round_1.csv", "data/confusion/self_training.csv", "data/self_training/classifier.pt",
                 "data/plots/rounds.csv", "data/plots/methods.csv", "data/report/summary.md",
                 "data/report/predictions.png", "data/report/rounds.png", "data/report/training_curves.png",
                 "data/headline.json", "data/dev_metrics/round_1.json"):
        assert (dvc_run / path).is_file(), path
    # One copy on disk: the workspace's caches are hard links to DVC's cache entries (.dvc/config cache.type).
    for name in ("labelled.h5", "pool.h5"):
        assert (dvc_run / "data" / "features" / name).stat().st_nlink >= 2, name
    lock = (dvc_run / "dvc.lock").read_text()
    assert "recursive_round@1:" in lock and "round_0:" in lock
    assert "up to date" in run(["dvc", "status"], dvc_run).lower() or "unchanged" in run(["dvc", "status"], dvc_run)


def test_snakemake_produces_the_same_metrics(dvc_run, snakemake_run):
    assert read_metrics(snakemake_run) == read_metrics(dvc_run)
    for path in ("data/headline.json", "data/dev_metrics/round_1.json", "data/plots/rounds.csv",
                 "data/plots/generator/round_1.csv", "data/plots/classifier/ceiling.csv"):
        assert (snakemake_run / path).read_text() == (dvc_run / path).read_text(), path


def dvc_stale(root) -> set[str]:
    return set(json.loads(run(["dvc", "status", "--json"], root)))


def snakemake_plan(root) -> set[str]:
    """The rules a dry run would run, without the target rule `all`."""
    return set(re.findall(r"^rule (\w+):", run(["snakemake", "-n"], root), flags=re.M)) - {"all"}


def test_an_edit_to_code_only_evaluate_runs_reruns_evaluate(tmp_path, dvc_run, snakemake_run):
    """The stale-metrics bug: edit a function that only the evaluate stage imports. `dvc status` must list
    evaluate (its metrics feed the report, which DVC reruns after it), and Snakemake must plan evaluate and
    the report; nothing upstream."""
    from zsseg.evaluation import evaluate_classifiers

    source = Path(inspect.getsourcefile(evaluate_classifiers)).relative_to(PROJECT_ROOT)
    assert [stage for stage, body in yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"].items()
            if str(source) in body.get("do", body)["deps"]] == ["evaluate"]
    for name, original in (("dvc", dvc_run), ("snakemake", snakemake_run)):
        root = tmp_path / name
        shutil.copytree(original, root, symlinks=True)
        assert (dvc_stale(root) if name == "dvc" else snakemake_plan(root)) == set(), name
        path = root / source
        text = path.read_text()
        path.write_text(text.replace('    for batch in batches:\n', '    for batch in batches:  # every class competes\n',
                                     1))
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
    assert set(metrics_diff) == {"data/headline.json"}  # the one declared metrics file
    changed = metrics_diff["data/headline.json"]
    assert {"val.recursive.hiou", "dev.recursive.hiou"} <= set(changed)
    # Round 0 does not depend on the recursion: DVC kept it, so its metrics are unchanged.
    assert not {name for name in changed if name.split(".")[1] in ("zs3net", "zs5net", "ceiling")}
    # The full files stay available by name.
    per_class = json.loads(run(["dvc", "metrics", "diff", "--json", "--targets", "data/dev_metrics/round_1.json"],
                               dvc_run))
    assert any(name.startswith("per_class_iou.") for name in per_class["data/dev_metrics/round_1.json"])
    shown = json.loads(run(["dvc", "exp", "show", "--json"], dvc_run))
    assert shown
    # The declared plots compare the experiment (the workspace) with the committed baseline, training curves too.
    plots = json.loads(run(["dvc", "plots", "diff", "--json"], dvc_run))
    rendered = json.dumps(plots)
    assert "workspace" in rendered and "HEAD" in rendered
    for path in ("data/plots/rounds.csv", "data/plots/methods.csv", "data/plots/backbone_loss.csv",
                 "data/plots/generator/round_1.csv", "data/plots/classifier/round_1.csv"):
        assert path in rendered, path


def test_every_declared_plot_has_its_data(dvc_run):
    """Each plot of dvc.yaml names files the report writes, with the columns it draws; DVC renders them all."""
    declared = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["plots"]
    for entry in declared:
        (path, definition), = entry.items()
        files = sorted((dvc_run / path).glob("*.csv")) if (dvc_run / path).is_dir() else [dvc_run / path]
        assert files, path
        for file in files:
            columns = pd.read_csv(file).columns
            wanted = definition["y"] if isinstance(definition["y"], list) else [definition["y"]]
            assert {definition["x"], *wanted} <= set(columns), (file, list(columns))
    plots = json.loads(run(["dvc", "plots", "show", "--json"], dvc_run))
    assert not plots.get("errors")
    rendered = json.dumps(plots)
    for path in ("data/plots/rounds.csv", "data/plots/backbone_loss.csv", "data/plots/generator/round_0.csv",
                 "data/plots/generator/round_1.csv", "data/plots/classifier/ceiling.csv"):
        assert path in rendered, path


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
    # The committed baseline (another test runs an experiment in dvc_run): K = 4 repeats it.
    baseline = json.loads((root / "data" / "headline.json").read_text())
    assert done[4]["metrics"]["data/headline.json"] == baseline
    # Each experiment's dev numbers are DVC metrics, what a sweep ranks by.
    dev = {k: entry["metrics"]["data/headline.json"]["dev"] for k, entry in done.items()}
    assert all(list(values) == [method.key for method in METHODS] for values in dev.values())
    assert dev[2]["zs3net"] != dev[4]["zs3net"]
    # The training curves of the two experiments, side by side.
    plots = json.dumps(json.loads(run(["dvc", "plots", "diff", "--json", done[2]["name"], done[4]["name"]], root)))
    for path in ("data/plots/backbone_loss.csv", "data/plots/generator/round_1.csv", "data/plots/classifier/round_1.csv"):
        assert path in plots, path
    assert done[2]["name"] in plots and done[4]["name"] in plots


def test_a_lab_shares_a_run_through_a_dvc_remote(tiny_runs, tmp_path):
    """docs/pipeline.md, "Share a run": one clone pushes to a local-directory DVC remote; a second clone pulls,
    and its `dvc repro` trains and evaluates nothing. Only demo and prepare rerun (their outputs are never
    cached, so no remote holds them) and come back byte-identical, so nothing downstream reruns."""
    origin = tiny_runs["dvc"]
    first, second, remote = tmp_path / "first", tmp_path / "second", tmp_path / "remote"
    run(["git", "clone", "-q", str(origin), str(first)], tmp_path)
    run(["dvc", "cache", "dir", "--local", str(origin / ".dvc" / "cache")], first)  # the run's outputs
    run(["dvc", "remote", "add", "-d", "lab", str(remote)], first)
    run(["git", "commit", "-q", "-am", "the lab's DVC remote"], first)
    run(["dvc", "push", "--run-cache"], first)
    run(["git", "clone", "-q", str(first), str(second)], tmp_path)
    # Before anything is pulled, the versioned plot data already compares commits.
    plots = json.loads(run(["dvc", "plots", "diff", "--json", "HEAD~1"], second))
    assert not plots.get("errors"), plots["errors"]
    for path in ("data/plots/rounds.csv", "data/plots/backbone_loss.csv", "data/plots/generator/round_1.csv"):
        assert path in json.dumps(plots), path
    run(["dvc", "pull", "--run-cache"], second)
    output = run(["dvc", "repro"], second)
    assert set(re.findall(r"^Running stage '([^']+)'", output, flags=re.M)) == {"demo", "prepare"}, output
    for name in ("backbone", "features", "round_0", "evaluate", "report"):
        assert f"Stage '{name}' didn't change, skipping" in output, name
    assert (second / "data" / "headline.json").read_text() == (first / "data" / "headline.json").read_text()
    assert read_metrics(second) == read_metrics(first)
    assert json.loads(run(["dvc", "status", "--json"], second)) == {}


def documented_exp_show_commands() -> list[list[str]]:
    """Every `dvc exp show` line of the README and docs/, as words, without its comment or redirection."""
    commands = []
    for document in (PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))):
        for line in document.read_text().splitlines():
            if line.startswith("dvc exp show"):
                words = shlex.split(line, comments=True)
                commands.append(words[:words.index(">")] if ">" in words else words)
    return commands


def test_every_documented_exp_show_fits_on_a_screen(tiny_runs):
    """Each `dvc exp show` filter of the docs, on the queue's two experiments: at most 40 columns, the headline
    dev metrics among them, and the rows in the order of the metric a line sorts by."""
    root = tiny_runs["queue"]
    commands = documented_exp_show_commands()
    assert len(commands) >= 4
    assert any("--sort-by" in words for words in commands)
    for words in commands:
        base = [word for word in words if word not in ("--csv", "--md", "--json")]
        header = run([*base, "--md"], root).splitlines()[0]
        columns = [name.strip() for name in header.strip().strip("|").split("|")]
        assert len(columns) <= 40, (words, len(columns), columns)
        assert "dev.recursive.hiou" in columns and "dev.zs3net.hiou" in columns, (words, columns)
        assert not [name for name in columns if "/" in name], columns  # no dependency's hash
        if "--sort-by" in words:
            key = words[words.index("--sort-by") + 1]
            descending = "--sort-order" in words and words[words.index("--sort-order") + 1] == "desc"
            rows = list(csv.DictReader(io.StringIO(run([*base, "--csv"], root))))
            column = key if key in rows[0] else key.split(":", 1)[1]
            values = [float(row[column]) for row in rows if row["typ"] not in ("workspace", "baseline")]
            assert len(values) == 2 and values == sorted(values, reverse=descending), (key, values)


@pytest.fixture(scope="module")
def grid_run(snakemake_run):
    """`snakemake --cores 4 --resources mem_mb=3000 gpu=2 table` (K = 2, 4 x seeds 0, 1) and its report, run
    beside the single split."""
    return snakemake_run


CELLS = [(k, seed) for k in (2, 4) for seed in (0, 1)]


def cell(root, k, seed):
    return root / "data" / f"k{k}" / f"s{seed}"


def test_grid_table_has_a_row_per_k_seed_method_and_round(grid_run):
    import pandas as pd

    frame = pd.read_csv(grid_run / "data" / "table" / "summary.csv")
    assert list(frame.columns) == ["dataset", "k", "seed", "method", "round", "pixel_acc", "mean_acc", "seen_miou",
                                   "unseen_miou", "miou", "hiou", "mined_classes", "seen_pixel_acc",
                                   "unseen_pixel_acc", "seen_mean_acc", "unseen_mean_acc", "unseen_of_ceiling"]
    mined = frame[frame["method"] == "recursive ZS-MMD"]["mined_classes"]
    assert (mined >= 1).all() and frame[frame["method"] == "ZS3Net"]["mined_classes"].isna().all()
    assert [tuple(row) for row in frame[["k", "seed", "method", "round"]].itertuples(index=False)] == [
        (k, seed, result.method.name, result.round) for k, seed in CELLS for result in results([1])]
    assert {("ZS3Net", 0), ("ZS5Net", 0), ("recursive ZS-MMD", 1)} <= set(zip(frame["method"], frame["round"]))
    assert set(frame["dataset"]) == {"demo"}
    # unseen_of_ceiling is the unseen mIoU over the ceiling's in the same cell, for zero-shot methods only
    # (undefined where the tiny ceiling has no unseen IoU).
    for (k, seed), rows in frame.groupby(["k", "seed"]):
        bound = rows[rows["method"] == "supervised ceiling (uses unseen labels)"]["unseen_miou"].iloc[0]
        zero_shot = rows[rows["method"] != "supervised ceiling (uses unseen labels)"]
        expected = (zero_shot["unseen_miou"] / bound).to_numpy() if bound else np.full(len(zero_shot), np.nan)
        assert zero_shot["unseen_of_ceiling"].to_numpy() == pytest.approx(expected, nan_ok=True)
        assert rows[rows["method"] == "supervised ceiling (uses unseen labels)"]["unseen_of_ceiling"].isna().all()
    for name in ("summary.md", "summary_mean.md", "summary_mean.csv", "paired.csv", "rounds.png", "methods.png",
                 "unseen_classes.png", "predictions_k4.png"):
        assert (grid_run / "data" / "table" / name).is_file(), name
    # Each cell's stages wrote under data/k<K>/s<seed>/, each with the log file its rule declares.
    for k, seed in CELLS:
        assert (cell(grid_run, k, seed) / "backbone" / "network.pt").is_file()
        for log in ("backbone", "features", "recursive_round_1", "evaluate",
                    *(method.stage for method in METHODS if not method.per_round or method.chain)):
            assert (cell(grid_run, k, seed) / "logs" / f"{log}.log").is_file(), (k, seed, log)
    assert not (grid_run / "data" / "k2" / "dataset").exists() and not (grid_run / "data" / "k2" / "demo").exists()
    assert json.loads((grid_run / "shared_stages_rerun.json").read_text()) == [], "K-independent stages run once"
    assert (grid_run / "data" / "logs" / "table.log").is_file()


def test_every_job_snakemake_ran_left_its_benchmark(grid_run, tmp_path):
    """The single run (killed and rerun) and the grid: every job's benchmark file, one per job of each rule
    in what bench/table.py reads."""
    params = yaml.safe_load((grid_run / "params.yaml").read_text())
    jobs = {job: values for job, values in dry_run(tmp_path / "project", params).items() if job[0] != "all"}
    missing = [values["benchmark"] for values in jobs.values() if not (grid_run / values["benchmark"]).is_file()]
    assert missing == []
    found = bench_script("table").rule_benchmarks(grid_run, snakemake_rules(params))
    assert {rule: len(benchmarks) for rule, benchmarks in found.items()} == Counter(rule for rule, _ in jobs)
    assert all(job.seconds > 0 for benchmarks in found.values() for job in benchmarks)


def test_means_and_paired_intervals_against_a_hand_computation(grid_run):
    import pandas as pd
    from scipy import stats

    frame = pd.read_csv(grid_run / "data" / "table" / "summary.csv")
    means = pd.read_csv(grid_run / "data" / "table" / "summary_mean.csv")
    paired = pd.read_csv(grid_run / "data" / "table" / "paired.csv")
    final = frame[(frame["method"] != "recursive ZS-MMD") | (frame["round"] == 1)]
    for k in (2, 4):
        proposed = final[(final["k"] == k) & (final["method"] == "recursive ZS-MMD")].set_index("seed")
        baseline = final[(final["k"] == k) & (final["method"] == "ZS3Net")].set_index("seed")
        row = means[(means["k"] == k) & (means["method"] == "ZS3Net")].iloc[0]
        assert row["n"] == 2 and row["hiou_mean"] == pytest.approx(baseline["hiou"].mean())
        assert row["hiou_std"] == pytest.approx(baseline["hiou"].std(ddof=1))
        differences = (proposed["hiou"] - baseline["hiou"]).to_numpy()
        mean, half = differences.mean(), stats.t.ppf(0.975, 1) * differences.std(ddof=1) / np.sqrt(2)
        got = paired[(paired["k"] == k) & (paired["comparison"] == "recursive ZS-MMD - ZS3Net")
                     & (paired["metric"] == "hiou")].iloc[0]
        assert (got["n"], got["mean_difference"]) == (2, pytest.approx(mean))
        assert (got["ci_low"], got["ci_high"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
        assert bool(got["excludes_zero"]) == (mean - half > 0 or mean + half < 0)
        # n = 2: one degree of freedom, t's two-sided tail is 1 - (2 / pi) atan|t|.
        t_statistic = mean / (differences.std(ddof=1) / np.sqrt(2))
        assert got["p_value"] == pytest.approx(1 - 2 / np.pi * np.arctan(abs(t_statistic)))
    # Holm over the whole table: never below the raw p-value, and the smallest raw one times the family's size.
    tested = paired.dropna(subset=["p_value"])
    assert (tested["p_holm"] >= tested["p_value"] - 1e-12).all()
    assert tested["p_holm"].min() == pytest.approx(min(1.0, tested["p_value"].min() * len(tested)))
    comparisons = set(paired["comparison"])
    assert {"recursive ZS-MMD - ZS3Net", "recursive ZS-MMD - ZS5Net"} <= comparisons
    assert not any("ceiling" in comparison for comparison in comparisons)
    text = (grid_run / "data" / "table" / "summary_mean.md").read_text()
    assert "uses unseen labels" in text and "± " in text and "t-interval" in text
    assert "Backbones: one per cell (table.backbone_per_seed: true)" in text
    assert "training randomness" in text and "1 degree of freedom" in text and "p (Holm)" in text


def test_snakemake_report_bundles_the_table_with_captions(grid_run):
    report = (grid_run / "data" / "table" / "report.html").read_text()
    for name in ("rounds.png", "methods.png", "unseen_classes.png", "predictions_k4.png", "summary_mean.html",
                 "summary.html"):
        assert name in report, name
    assert "one line per number of unseen classes K" in report  # the caption of rounds.png


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def open_report(playwright, report: Path):
    """A Snakemake report in Debian's headless Chromium, in a laptop's 1400 x 1000 window, at its results."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed: `make test` installs it (root and apt-get)"
    browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(report.as_uri())
    page.get_by_text("Results", exact=True).first.click()
    return browser, page


def open_result(page, name: str, screenshots: Path) -> None:
    page.locator("tr", has_text=name).first.locator("a[iconname=eye]").click()
    page.wait_for_timeout(500)
    page.screenshot(path=screenshots / f"report_{name}.png")


def figures_as_shown(page, screenshots: Path) -> dict[str, dict]:
    """Every result of the report's open category that shows a figure: its largest image's natural and
    rendered width, area and position (a screenshot of each lands in ``screenshots``)."""
    shown = {}
    for row in page.locator("tr", has=page.locator("a[iconname=eye]")).all():
        name = row.locator("td").first.inner_text().strip()
        open_result(page, name, screenshots)
        images = page.locator("img[src^='data:image/png']").evaluate_all(
            "images => images.map(image => ({natural: image.naturalWidth, rendered: image.clientWidth, "
            "area: image.naturalWidth * image.naturalHeight, top: image.getBoundingClientRect().top, "
            "left: image.getBoundingClientRect().left}))")
        if images:
            shown[name] = max(images, key=lambda image: image["area"])
    return shown


def assert_readable_as_shown(shown: dict[str, dict]) -> None:
    """Every figure, at the size this window (a laptop's) shows it: its natural size, or scaled down to the
    width beside the menu. Its smallest text (SMALLEST_TEXT_PT at FIGURE_DPI) must stay at 7 CSS px or more:
    smaller, a sans-serif's lowercase letters are under 4 px tall and run together. And no part of it is out
    of reach: the report centres a figure taller than the window, whose top (the titles) then lies above the
    scrollable area."""
    smallest_text_px = SMALLEST_TEXT_PT * FIGURE_DPI / 72
    for name, image in shown.items():
        assert image["area"] > 100_000, name
        assert smallest_text_px * image["rendered"] / image["natural"] >= 7, (name, image)
        assert image["top"] >= 0 and image["left"] >= 0, (name, image)


def test_the_report_renders_its_tables_and_figures_in_chromium(grid_run, tmp_path):
    """Debian's Chromium, headless, opens the report as a person would: the mean ± std table with the
    paired intervals, and every figure, drawn large enough to read and within reach (a screenshot of each
    result lands beside the report)."""
    from playwright.sync_api import sync_playwright

    screenshots = grid_run / "data" / "table"
    with sync_playwright() as playwright:
        browser, page = open_report(playwright, screenshots / "report.html")
        open_result(page, "summary_mean", screenshots)
        frame = next(frame for frame in page.frames if frame.url.startswith("data:text/html"))
        text = frame.inner_text("body")
        assert frame.locator("table").count() >= 3
        assert "Mean ± standard deviation over the seeds" in text and "95% t-interval" in text
        assert "supervised ceiling (uses unseen labels)" in text and "recursive ZS-MMD - ZS3Net" in text
        shown = figures_as_shown(page, screenshots)
        browser.close()
    assert {"methods", "rounds", "unseen_classes", "predictions_k4"} <= set(shown), shown
    assert_readable_as_shown(shown)


def test_the_scheduler_never_holds_more_memory_or_gpus_than_declared(grid_run):
    """`snakemake --cores 4 --resources mem_mb=3000 gpu=2 table`: four cores would run four jobs at once;
    the limits let three 1000 MB jobs, two of them at most on a GPU, run side by side."""
    held = held_resources((grid_run / "table_run.log").read_text())
    assert len(held) > 2 * 40   # every job of the grid started and finished
    assert held[-1] == {"jobs": 0, "mem_mb": 0, "gpu": 0}
    assert max(state["mem_mb"] for state in held) <= MADE_UP_LIMITS["mem_mb"]
    assert max(state["jobs"] for state in held) <= 3
    # The GPU limit was reached, and held: more GPU jobs than two were ready most of the time.
    assert max(state["gpu"] for state in held) == MADE_UP_LIMITS["gpu"]


def test_the_log_reading_sees_what_jobs_hold_at_once():
    """The control: a log in Snakemake's format, by hand, in which three jobs overlap."""
    def started(rule, job, resources):
        return f"[Sun Dec  6 20:58:04 2026]\nrule {rule}:\n    jobid: {job}\n    resources: tmpdir=/tmp, {resources}\n"

    def finished(job):
        return f"[Sun Dec  6 20:58:05 2026]\nFinished jobid: {job} (Rule: x)\n"

    log = "Select jobs to execute...\n" + "".join([
        started("backbone", 1, "mem_mb=4000, gpu=1"), started("samples", 2, "mem_mb=1000"),
        started("round_0", 3, "mem_mb=3000, gpu=1"), finished(2), finished(1), finished(3)])
    assert held_resources(log) == [
        {"jobs": 1, "mem_mb": 4000, "gpu": 1}, {"jobs": 2, "mem_mb": 5000, "gpu": 1},
        {"jobs": 3, "mem_mb": 8000, "gpu": 2}, {"jobs": 2, "mem_mb": 7000, "gpu": 2},
        {"jobs": 1, "mem_mb": 3000, "gpu": 1}, {"jobs": 0, "mem_mb": 0, "gpu": 0}]


def test_grid_cells_equal_the_single_runs(grid_run, snakemake_run):
    import pandas as pd

    # The single run has dataset.unseen = 4, seed 0 (the dvc run is not used: another test runs an
    # experiment in it).
    single = read_metrics(snakemake_run)
    for name, values in single.items():
        assert (cell(grid_run, 4, 0) / "metrics" / name).read_text() == \
            (snakemake_run / "data" / "metrics" / name).read_text(), name
    frame = pd.read_csv(grid_run / "data" / "table" / "summary.csv")
    row = frame[(frame["k"] == 4) & (frame["seed"] == 0) & (frame["method"] == "recursive ZS-MMD")
                & (frame["round"] == 1)].iloc[0]
    assert row["hiou"] == pytest.approx(single["round_1.json"]["hiou"])
    k2 = json.loads((cell(grid_run, 2, 0) / "metrics" / "round_0.json").read_text())
    assert sum(value is not None for value in k2["per_class_iou"].values()) >= 2
    assert k2 != single["round_0.json"]
    # Another seed is another backbone, cache and every method.
    assert (cell(grid_run, 4, 1) / "metrics" / "round_0.json").read_text() != \
        (cell(grid_run, 4, 0) / "metrics" / "round_0.json").read_text()


def test_metrics_are_byte_identical_across_runs_engines_cores_and_kills(dvc_run, snakemake_run, grid_run):
    """Three independent tiny runs with the same params: `dvc repro` killed mid-features and rerun,
    `snakemake` killed mid-round-0 and rerun with `--cores 1`, and the uninterrupted K = 4 cell of
    the grid under `snakemake --cores 2`. Every metrics file is byte-identical."""
    names = sorted(path.name for path in (cell(grid_run, 4, 0) / "metrics").glob("*.json"))
    assert names == sorted(f"{result.metrics}.json" for result in results([1]))
    for name in names:
        committed = run(["git", "show", f"HEAD:data/metrics/{name}"], dvc_run)
        assert (snakemake_run / "data" / "metrics" / name).read_text() == committed, name
        assert (cell(grid_run, 4, 0) / "metrics" / name).read_text() == committed, name
    assert not list((dvc_run / "data").glob(".*.partial-*")), "the rerun cleared the killed run's leftovers"


def test_the_single_run_report_shows_the_training_curves_in_chromium(snakemake_run):
    """`snakemake --report` of the single run, opened in Debian's headless Chromium: the training curves are
    among its figures, and every figure is readable and within reach as the grid report's are (a screenshot
    of each lands beside the report)."""
    from playwright.sync_api import sync_playwright

    from zsseg.curves import FIGURE_INCHES

    report = snakemake_run / "data" / "report.html"
    assert "training_curves.png" in report.read_text()
    with sync_playwright() as playwright:
        browser, page = open_report(playwright, report)
        shown = figures_as_shown(page, snakemake_run / "data")
        browser.close()
    assert set(shown) == {"predictions", "rounds", "training_curves", "mining_precision"}, shown
    assert shown["training_curves"]["natural"] == FIGURE_INCHES[0] * FIGURE_DPI
    assert_readable_as_shown(shown)
