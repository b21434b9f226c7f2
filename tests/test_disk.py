"""A grid's disk need: the prediction against a count by hand and against what a real cell wrote, and the
disk_check stage, which refuses a grid that does not fit (and runs it when told to), writing nothing then."""

import json
import shutil
from collections import namedtuple

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import run_stages_in_process, tiny_params, write_folder_dataset, write_params
from stages import disk_check
from zsseg.config import parse_params
from zsseg.datasets.folder import FolderDataset
from zsseg.disk import (SMALL_FILES_BYTES, CellNeed, DiskSpaceError, TrainImage, cell_bytes, check_free_space,
                        train_images)


def test_a_cell_by_hand():
    params = parse_params(tiny_params(**{"features.labelled_share": 0.5, "features.pool_share": 0.25,
                                         "recursion.rounds": {"1": 0, "2": 1}, "recursion.per_class_cap": 100,
                                         "generator.real_features_per_class": 10}))
    # Stride 8 (efficientnet_lite0): a 64 x 70 label has 8 x 9 feature pixels, a 20 x 20 one 3 x 3.
    images = [TrainImage((64, 70), frozenset({0, 1})), TrainImage((64, 70), frozenset({0, 2})),
              TrainImage((20, 20), frozenset({1, 255}))]
    parts = cell_bytes(params, images, unseen=[2])
    dimension = params.backbone.feature_dim
    per_pixel = dimension + 4 + 4 + 4                     # uint8 codes, low, step, position
    assert parts["features"] == int((72 + 9) * 0.5 * (per_pixel + 1) + 72 * 0.25 * per_pixel)
    assert parts["ceiling labels"] == int(72 * 0.25)
    assert parts["samples"] == 10 * 2 * per_pixel          # seen classes 0 and 1, balanced: one sample
    assert parts["pseudo-features"] == 3 * 2 * 100 * 1 * (per_pixel + 16)   # rounds and two ablations
    assert parts["small files"] == SMALL_FILES_BYTES
    assert parts["backbone"] > 4 * 1_000_000                # efficientnet_lite0 and its head: millions of weights


def test_refused_when_the_cells_still_to_run_need_more_than_is_free(tmp_path):
    needs = [CellNeed(tmp_path / "k2" / "s0", 7_000_000_000, 1_000_000_000), CellNeed(tmp_path / "k4" / "s0", 5e9, 0)]
    with pytest.raises(DiskSpaceError) as refused:
        check_free_space(needs, tmp_path, free=10_000_000_000)
    message = str(refused.value)
    assert str(tmp_path) in message and "2 grid cells still to run need about 11.0 GB" in message
    assert "has 10.0 GB free" in message and "table.check_free_space: false" in message
    figures = check_free_space(needs, tmp_path, free=12_000_000_000)
    assert figures["need_bytes"] == 11_000_000_000 and figures["cells"] == 2


def demo_like_dataset(root):
    rng = np.random.default_rng(0)
    splits = {}
    for split, count in (("train", 6), ("val", 2)):
        items = {}
        for index in range(count):
            label = np.zeros((64, 64), np.uint8)
            label[8:40, 8:40] = 1 + index % 2             # classes 1 and 2 in turn: half the images hold "b"
            items[f"{split}{index}"] = (rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), label)
        splits[split] = items
    return write_folder_dataset(root, ["background", "a", "b"], splits, ["b", "a"])


def run_disk_check(tmp_path, monkeypatch, free, **overrides):
    dataset = demo_like_dataset(tmp_path / "dataset")
    params = write_params(tmp_path / "params.yaml", tiny_params(**{
        "dataset.name": "folder", "dataset.root": str(dataset), "table.k_values": [1, 2], "table.seeds": [0],
        **overrides}))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 ** 12, 10 ** 12 - free, free))
    output = tmp_path / "data" / "disk_check.json"
    (tmp_path / "data").mkdir()
    disk_check.main(["--params", str(params), "--dataset", str(dataset), "--grid", str(tmp_path / "data"),
                     "--output", str(output)])
    return output


def test_the_stage_refuses_a_grid_that_does_not_fit_and_writes_nothing(tmp_path, monkeypatch, capsys):
    # shutil.disk_usage is replaced: a full filesystem cannot be made here, and the stage asks only it.
    with pytest.raises(SystemExit) as exit_info:
        run_disk_check(tmp_path, monkeypatch, free=1_000_000)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert message.startswith("disk_check: error: ") and "2 grid cells still to run need about" in message
    assert "has 0.0 GB free" in message
    assert not (tmp_path / "data" / "disk_check.json").exists()
    assert not list((tmp_path / "data").glob(".disk_check.json.partial-*"))


def test_the_stage_passes_a_grid_that_fits_or_is_told_to_run(tmp_path, monkeypatch):
    figures = json.loads(run_disk_check(tmp_path / "fits", monkeypatch, free=10 ** 11).read_text())
    assert figures["cells"] == 2 and figures["free_bytes"] == 10 ** 11
    # K = 1 holds one unseen class ("b": half the images unlabelled), K = 2 both: every image unlabelled.
    assert set(figures["per_cell"]) == {str(tmp_path / "fits" / "data" / "k1" / "s0"),
                                        str(tmp_path / "fits" / "data" / "k2" / "s0")}
    told = json.loads(run_disk_check(tmp_path / "told", monkeypatch, free=1_000_000,
                                     **{"table.check_free_space": False}).read_text())
    assert told["checked"] is False and told["need_bytes"] > 1_000_000


def test_a_cell_that_borrows_its_backbone_needs_no_room_for_one(tmp_path, monkeypatch):
    """table.backbone_per_seed: false: the second seed's cell writes no backbone and no cache."""
    seeds = {"table.k_values": [1], "table.seeds": [0, 1]}
    own = json.loads(run_disk_check(tmp_path / "own", monkeypatch, free=10 ** 11, **seeds).read_text())
    shared = json.loads(run_disk_check(tmp_path / "shared", monkeypatch, free=10 ** 11, **seeds,
                                       **{"table.backbone_per_seed": False}).read_text())
    first, second = (str(tmp_path / "shared" / "data" / "k1" / f"s{seed}") for seed in (0, 1))
    assert own["per_cell"][first.replace("shared", "own")] == own["per_cell"][second.replace("shared", "own")] \
        == shared["per_cell"][first]
    params = parse_params(tiny_params(**{"dataset.unseen": 1}))
    images = train_images(FolderDataset(tmp_path / "shared" / "dataset"))
    parts = cell_bytes(params, images, FolderDataset(tmp_path / "shared" / "dataset").class_split(1).unseen)
    assert shared["per_cell"][second] == shared["per_cell"][first] - parts["features"] - parts["backbone"]


def test_the_feature_prediction_matches_what_a_real_cell_wrote(tmp_path):
    """The features stage's caches of a real tiny run against cell_bytes' features, HDF5's overhead aside."""
    dataset = demo_like_dataset(tmp_path / "dataset")
    params_path = write_params(tmp_path / "params.yaml", tiny_params(**{
        "dataset.name": "folder", "dataset.root": str(dataset), "dataset.unseen": 1,
        "features.pool_share": 0.5}))
    run_stages_in_process(params_path, tmp_path / "data", ("prepare", "encode", "backbone", "features"))
    written = sum(path.stat().st_size for path in (tmp_path / "data" / "features").iterdir())
    images = []
    for image_id in FolderDataset(dataset).ids("train"):
        label = np.array(Image.open(dataset / "labels" / f"{image_id}.png"))
        images.append(TrainImage(label.shape, frozenset(np.unique(label).tolist())))
    predicted = cell_bytes(parse_params(yaml.safe_load(params_path.read_text())), images, [2])
    # Half the pool's pixels are drawn at random: the prediction is their expectation. HDF5's own metadata
    # takes some kilobytes per file.
    assert predicted["features"] == pytest.approx(written, rel=0.15, abs=2 * 65536)
