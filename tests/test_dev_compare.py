"""bench/dev_compare.py on two hand-made grids: per K paired over the seeds, and overall the mean of the per-K
means with an interval over the K (not one pooled over every cell)."""

import json
import re
import sys

import pytest

from pipeline_runs import bench_script
from zsseg.methods import final_results
from zsseg.pipeline import grid_cell
from zsseg.report import mean_and_t_interval

K_VALUES, SEEDS = (2, 4, 6), (0, 1, 2)


def write_grid(root, value):
    for k in K_VALUES:
        for seed in SEEDS:
            directory = grid_cell(root, k, seed) / "dev_metrics"
            directory.mkdir(parents=True)
            for result in final_results([1, 2, 3]):
                metrics = {name: value(k, seed) for name in ("hiou", "unseen_miou", "seen_miou")}
                (directory / f"{result.metrics}.json").write_text(json.dumps(metrics))


def test_dev_compare_pairs_per_k_and_averages_the_k_means(tmp_path, monkeypatch, capsys):
    # OTHER - BASE: k / 2 + seed / 10 in cell (k, seed), so per K the differences are k/2 + 0, 0.1, 0.2.
    write_grid(tmp_path / "base", lambda k, seed: 50.0)
    write_grid(tmp_path / "other", lambda k, seed: 50.0 + k / 2 + seed / 10)
    monkeypatch.setattr(sys, "argv", ["dev_compare.py", str(tmp_path / "base"), str(tmp_path / "other"),
                                      "--k", *map(str, K_VALUES), "--seeds", *map(str, SEEDS)])
    bench_script("dev_compare").main()
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("ZS3Net") and " hiou " in line]
    numbers = [[float(x) for x in re.findall(r"[-+]?\d+\.\d+", line)] for line in lines]
    per_k = [mean_and_t_interval([k / 2 + seed / 10 for seed in SEEDS]) for k in K_VALUES]
    for row, (mean, low, high) in zip(numbers, per_k):
        assert row[2:] == pytest.approx([mean, low, high], abs=0.006)
    overall = mean_and_t_interval([mean for mean, _, _ in per_k])
    assert numbers[-1][2:] == pytest.approx(list(overall), abs=0.006)
    # Pooling the 9 cells (8 degrees of freedom) would give a narrower interval than the 3 K means do.
    pooled = mean_and_t_interval([k / 2 + seed / 10 for k in K_VALUES for seed in SEEDS])
    assert pooled[2] - pooled[1] < overall[2] - overall[1]
    assert len(lines) == len(K_VALUES) + 1 and "all K" in lines[-1]
