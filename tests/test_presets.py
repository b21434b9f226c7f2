"""`zsseg preset`: a preset holds only what differs from params.yaml, and the command writes a validated
params.yaml (comments kept) from it and the user's paths, or refuses and writes nothing."""

import re
import shutil

import pytest
import yaml

from conftest import PROJECT_ROOT, SHARED
from zsseg.config import load_params
from zsseg.presets import PRESETS as PRESETS_DIRECTORY
from zsseg.presets import main as preset_main

PRESETS = ("voc", "context")   # the dataset presets; zs3net is an overlay over one of them
WORD2VEC = SHARED / "data" / "zs3net_word2vec"


def leaves(data, prefix=""):
    if isinstance(data, dict):
        return {key: value for name, child in data.items() for key, value in leaves(child, f"{prefix}{name}.").items()}
    return {prefix.rstrip("."): data}


@pytest.mark.parametrize("preset", PRESETS)
def test_a_preset_holds_only_what_differs_from_params_yaml(preset):
    base = leaves(yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text()))
    overlay = leaves(yaml.safe_load((PRESETS_DIRECTORY / f"{preset}.yaml").read_text()))
    assert overlay and set(overlay) <= set(base)
    assert [key for key, value in overlay.items() if base[key] == value] == []


def apply(tmp_path, preset, *assignments):
    params = tmp_path / "params.yaml"
    if not params.exists():
        shutil.copy(PROJECT_ROOT / "params.yaml", params)
    arguments = [preset, "--params", str(params)]
    for assignment in assignments:
        arguments += ["--set", assignment]
    preset_main(arguments)
    return params


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_with_paths_gives_zs3net_recipe(tmp_path, preset):
    weights = tmp_path / "resnet101.pth"
    weights.write_bytes(b"")
    params_path = apply(tmp_path, preset, f"dataset.root={tmp_path}", f"backbone.weights={weights}",
                        f"embed.path={WORD2VEC / f'{preset}_word2vec_300.npy'}", "dataset.unseen=6")
    params = load_params(params_path)
    backbone = params.backbone
    assert params.dataset.name == preset and params.dataset.root == str(tmp_path) and params.dataset.unseen == 6
    assert params.embed.source == "word2vec"
    assert (backbone.arch, backbone.crop_size, backbone.batch_size, backbone.optimizer) == \
        ("deeplabv3plus_resnet101", 312, 16, "sgd")
    assert (backbone.learning_rate, backbone.head_lr_multiplier, backbone.momentum, backbone.weight_decay) == \
        (0.007, 10.0, 0.9, 0.0005)
    assert backbone.epochs == 200 and backbone.aspp_rates == [6, 12, 18] and not backbone.freeze_encoder
    assert backbone.loss_label_stride == 1   # ZS3Net's loss sees every label pixel
    assert params.self_training.top_percent == (75 if preset == "context" else 25)
    text = params_path.read_text()
    # params.yaml's own comments survive, and the lists keep their one-line form.
    assert "# auto (CUDA when present) | cpu | cuda" in text and "aspp_rates: [6, 12, 18]" in text
    assert 'rounds: {"1": 0, "2": 1, "3": 2}' in text


@pytest.mark.parametrize("assignments, culprit", [
    ((), "dataset.root = '/path/to/pascal': fill in your path with --set dataset.root=PATH"),
    (("dataset.root=/data", "backbone.weights=/nowhere.pth", "embed.path=/nowhere.npy"),
     "embed.path = '/nowhere.npy': expected the path of an existing word2vec file"),
    (("dataset.rooot=/data",), "unknown key dataset.rooot; allowed keys: name, root, unseen"),
    (("dataset.root",), "--set 'dataset.root': expected KEY=VALUE"),
])
def test_refusals_write_nothing(tmp_path, capsys, assignments, culprit):
    params = tmp_path / "params.yaml"
    shutil.copy(PROJECT_ROOT / "params.yaml", params)
    with pytest.raises(SystemExit) as exit_info:
        apply(tmp_path, "voc", *assignments)
    assert exit_info.value.code == 2
    assert culprit in capsys.readouterr().err
    assert params.read_text() == (PROJECT_ROOT / "params.yaml").read_text()
    assert [path.name for path in tmp_path.iterdir()] == ["params.yaml"]


def test_unknown_preset_lists_the_presets(tmp_path, capsys):
    with pytest.raises(SystemExit):
        apply(tmp_path, "cityscapes")
    assert "expected one of cocostuff, context, context-cagnet, voc, voc15, zs3net" in capsys.readouterr().err


def fidelity_column() -> dict:
    """docs/method.md's fidelity table: each row naming an option, with the value its ZS3Net column starts with."""
    text = (PROJECT_ROOT / "docs" / "method.md").read_text()
    table = text[text.index("## ZS3Net fidelity"):text.index("## Where the code is")]
    column = {}
    for row in table.splitlines():
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if len(cells) == 4:
            key = re.search(r"\(`([a-z_]+\.[a-z_]+)`\)$", cells[0])
            value = re.match(r"`([^`]+)`", cells[1])
            if key:
                assert value, f"{key.group(1)}: its ZS3Net cell names no value"
                column[key.group(1)] = yaml.safe_load(value.group(1))
    return column


def test_the_zs3net_overlay_sets_exactly_the_fidelity_tables_zs3net_column():
    column = fidelity_column()
    assert {"generator.noise", "generator.learning_rate", "generator.samples_per_class", "classifier.unseen_weight",
            "evaluate.absent_classes"} <= set(column)
    assert leaves(yaml.safe_load((PRESETS_DIRECTORY / "zs3net.yaml").read_text())) == column


@pytest.mark.parametrize("preset", PRESETS)
def test_the_zs3net_overlay_composes_with_a_dataset_preset(tmp_path, preset):
    weights = tmp_path / "resnet101.pth"
    weights.write_bytes(b"")
    apply(tmp_path, preset, f"dataset.root={tmp_path}", f"backbone.weights={weights}",
          f"embed.path={WORD2VEC / f'{preset}_word2vec_300.npy'}")
    params = load_params(apply(tmp_path, "zs3net"))
    assert params.dataset.name == preset and params.backbone.arch == "deeplabv3plus_resnet101"   # the preset's
    assert (params.generator.noise, params.generator.learning_rate, params.generator.samples_per_class) == \
        ("uniform", 0.0002, 128)
    assert (params.classifier.sampling, params.classifier.unseen_weight, params.evaluate.absent_classes) == \
        ("natural", 100.0, "zero")
