"""The headline metrics DVC shows and the training curves it plots, from hand-made metrics and logs."""

import json
import re

import pandas as pd

from zsseg.curves import BACKBONE_CURVE, plot_training_curves, training_curves, write_curves
from zsseg.evaluation import HEADLINE_METRICS, headline_metrics
from zsseg.methods import METHODS, results


def test_method_keys_are_short_distinct_identifiers():
    keys = [method.key for method in METHODS]
    assert len(set(keys)) == len(keys)
    assert all(re.fullmatch(r"[a-z0-9_]+", key) for key in keys), keys


def test_headline_holds_each_methods_final_result_on_each_split():
    rounds = [1, 2]
    metrics_by_split = {split: {result.metrics: {"hiou": 10 * index + offset, "unseen_miou": index,
                                                 "seen_miou": -index, "per_class_iou": {"cat": 1.0}}
                                for index, result in enumerate(results(rounds))}
                        for split, offset in (("val", 0.5), ("dev", 0.25))}
    headline = headline_metrics(metrics_by_split, rounds)
    assert set(headline) == {"val", "dev"}
    for split in headline:
        assert list(headline[split]) == [method.key for method in METHODS]
        for method in METHODS:
            stem = method.metrics.format(round=2)  # a per-round method's headline is its last round
            expected = {name: metrics_by_split[split][stem][name] for name in HEADLINE_METRICS}
            assert headline[split][method.key] == expected
    # 6 methods x 3 metrics x 2 splits: the columns `dvc exp show` adds for them (docs/pipeline.md).
    assert sum(len(values) for split in headline.values() for values in split.values()) == len(METHODS) * 3 * 2


def fake_run(root, rounds, backbone_log):
    (root / "backbone").mkdir(parents=True)
    (root / "backbone" / "training_log.json").write_text(json.dumps(backbone_log))
    logs = {}
    for index, result in enumerate(results(rounds)):
        log = {"classifier": [{"epoch": epoch, "loss": 1.0 / (epoch + 1 + index)} for epoch in range(3)]}
        if result.method.zero_shot and result.method.key != "zs5net":
            log["generator"] = [{"step": step, "loss": 9.0, "seen_mmd": 2.0 - step / 10 - index,
                                 "pseudo_mmd": 0.0 if result.round == 0 else 1.0 + step} for step in (0, 5, 10)]
        (root / result.directory).mkdir(parents=True)
        (root / result.directory / "training_log.json").write_text(json.dumps(log))
        logs[result.metrics] = log
    return logs


def test_training_curves_are_the_logged_values(tmp_path):
    rounds = [1, 2]
    logs = fake_run(tmp_path, rounds, [{"epoch": 0, "loss": 0.9}, {"epoch": 1, "loss": 0.5}])
    curves = training_curves(tmp_path, tmp_path / "backbone", rounds)
    assert curves[BACKBONE_CURVE].to_dict("records") == [{"epoch": 0, "loss": 0.9}, {"epoch": 1, "loss": 0.5}]
    generators = {name for name in curves if name.startswith("generator/")}
    assert generators == {f"generator/{stem}.csv" for stem, log in logs.items() if "generator" in log}
    assert "generator/self_training.csv" not in generators and "generator/ceiling.csv" not in generators
    for stem, log in logs.items():
        assert curves[f"classifier/{stem}.csv"].to_dict("records") == log["classifier"]
        if "generator" in log:
            expected = [{key: entry[key] for key in ("step", "seen_mmd", "pseudo_mmd")} for entry in log["generator"]]
            assert curves[f"generator/{stem}.csv"].to_dict("records") == expected
    written = tmp_path / "plots"
    write_curves(curves, written)
    for name, frame in curves.items():
        pd.testing.assert_frame_equal(pd.read_csv(written / name), frame)
    figure = plot_training_curves(curves, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    generator_axis = figure.axes[1]
    # A solid seen line per generator, and a dashed pseudo line for each round that had pseudo-features.
    assert len(generator_axis.lines) == len(generators) + sum(
        1 for stem, log in logs.items() if "generator" in log and any(e["pseudo_mmd"] for e in log["generator"]))


def test_a_backbone_loaded_from_a_checkpoint_has_no_curve(tmp_path):
    fake_run(tmp_path, [1], [{"checkpoint": "deeplab.pth"}])
    curves = training_curves(tmp_path, tmp_path / "backbone", [1])
    assert BACKBONE_CURVE not in curves and "classifier/round_1.csv" in curves
