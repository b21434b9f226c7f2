"""`zsseg predict` on the tiny trained run: own class list = the evaluate stage's prediction, a
re-fitted classifier agrees with it, an extra name only takes pixels, and bad input is refused."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stages import predict as predict_stage
from zsseg.cli import main as zsseg_main
from zsseg.config import load_params
from zsseg.datasets.folder import FolderDataset
from zsseg.encoder_maps import shared_maps
from zsseg.feature_extraction import split_features
from zsseg.network import NETWORK_FILE, load_network
from zsseg.classifier import load_classifier
from zsseg.dense_prediction import predict


@pytest.fixture(scope="module")
def trained(snakemake_run):
    data = snakemake_run / "data"
    names = (data / "dataset" / "classes.txt").read_text().split("\n")[:-1]
    # The evaluate stage's features of the first val images: the head on the encode stage's shared maps.
    params = load_params(snakemake_run / "params.yaml")
    network, _ = load_network(data / "backbone" / NETWORK_FILE, torch.device("cpu"))
    batch = next(split_features(network, FolderDataset(data / "dataset"), "val", 2, torch.device("cpu"),
                                maps=shared_maps(data / "encoder_maps.h5", params.backbone)))
    evaluated = predict(batch, load_classifier(data / "rounds" / "1"), torch.device("cpu"))
    image = next((data / "dataset" / "images").glob(f"{batch.ids[0]}.*"))
    return {"root": snakemake_run, "names": names, "image": image, "evaluated": evaluated[0].numpy()}


def run_predict(trained, out, *arguments):
    root = trained["root"]
    predict_stage.main([str(trained["image"]), "--data", str(root / "data"), "--params", str(root / "params.yaml"),
                        "--out", str(out), *arguments])
    stem = trained["image"].stem
    labels = np.array(Image.open(out / f"{stem}_labels.png"))
    return labels, json.loads((out / f"{stem}.json").read_text())


def test_own_class_list_reproduces_the_evaluate_prediction(trained, tmp_path, capsys):
    labels, summary = run_predict(trained, tmp_path, "--classes", ", ".join(trained["names"]))
    assert np.array_equal(labels, trained["evaluated"])
    assert summary["classes"] == trained["names"]
    assert summary["run"].endswith("rounds/1")  # the last round by default
    fractions = summary["fractions"]
    assert sum(fractions.values()) == pytest.approx(1.0)
    expected = np.bincount(labels.reshape(-1), minlength=len(trained["names"])) / labels.size
    assert [fractions[name] for name in trained["names"]] == pytest.approx(expected.tolist())
    assert (tmp_path / f"{trained['image'].stem}_overlay.png").is_file()
    printed = capsys.readouterr().out
    top = trained["names"][int(np.argmax(expected))]
    assert str(trained["image"]) in printed and top in printed


def test_refitted_classifier_agrees_on_most_pixels(trained, tmp_path):
    labels, _ = run_predict(trained, tmp_path, "--classes", ", ".join(trained["names"]), "--refit")
    assert (labels == trained["evaluated"]).mean() >= 0.9


def test_an_extra_name_only_takes_pixels(trained, tmp_path):
    names = [*trained["names"], "purple star"]
    labels, summary = run_predict(trained, tmp_path, "--classes", ", ".join(names))
    moved = labels != trained["evaluated"]
    assert np.all(labels[moved] == len(names) - 1)
    assert summary["classes"][-1] == "purple star"


def test_installed_console_script_with_a_classes_file_and_a_directory(trained, tmp_path):
    (tmp_path / "classes.txt").write_text("\n".join(trained["names"]) + "\n")
    root = trained["root"]
    script = Path(sys.executable).parent / "zsseg"
    result = subprocess.run([str(script), "predict", str(trained["image"].parent), "--classes-file",
                             str(tmp_path / "classes.txt"), "--data", "data", "--out", str(tmp_path / "out")],
                            cwd=root, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    assert result.returncode == 0, result.stderr
    labels = np.array(Image.open(tmp_path / "out" / f"{trained['image'].stem}_labels.png"))
    assert np.array_equal(labels, trained["evaluated"])
    val_images = len(list(trained["image"].parent.iterdir()))
    assert len(list((tmp_path / "out").glob("*_overlay.png"))) == val_images


def refuse(trained, tmp_path, capsys, culprit, *arguments, image=None):
    out = tmp_path / "out"
    root = trained["root"]
    with pytest.raises(SystemExit) as exit_info:
        predict_stage.main([str(image or trained["image"]), "--data", str(root / "data"),
                            "--params", str(root / "params.yaml"), "--out", str(out), *arguments])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert message.startswith("predict: error: ") and culprit in message, message
    assert not out.exists()


def test_empty_class_list(trained, tmp_path, capsys):
    refuse(trained, tmp_path, capsys, "--classes: the class list is empty", "--classes", " , ,")


def test_duplicate_names(trained, tmp_path, capsys):
    refuse(trained, tmp_path, capsys, "class name 'Cat' is given twice (as 'cat')", "--classes", "background, cat, Cat")


def test_name_the_embedding_source_cannot_embed(trained, tmp_path, capsys):
    refuse(trained, tmp_path, capsys, "class 'flibbertigibbetz' has no GloVe vector",
           "--classes", "background, red circle, flibbertigibbetz")


def test_unreadable_image(trained, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(trained["image"].read_bytes()[:100])
    refuse(trained, tmp_path, capsys, f"{broken}: unreadable or truncated image", "--classes", "background, cat",
           image=broken)


def test_run_without_a_trained_round(trained, tmp_path, capsys):
    (tmp_path / "rounds" / "0").mkdir(parents=True)
    refuse(trained, tmp_path, capsys, f"--run {tmp_path / 'rounds' / '0'}: not a trained round",
           "--classes", "background, cat", "--run", str(tmp_path / "rounds" / "0"))


def test_zsseg_without_a_stage_lists_the_stages(capsys):
    with pytest.raises(SystemExit) as exit_info:
        zsseg_main([])
    assert exit_info.value.code == 2
    usage = capsys.readouterr().err
    assert usage.startswith("usage: zsseg {") and "predict" in usage and "evaluate" in usage
