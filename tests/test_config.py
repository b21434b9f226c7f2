"""params.yaml validation names the key, the value and what is allowed."""

import copy
import re
from pathlib import Path

import pytest
import yaml

from zsseg.config import ParamsError, load_params, parse_params
from zsseg.presets import validate

PARAMS = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())


def with_value(path, value):
    data = copy.deepcopy(PARAMS)
    node = data
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return data


def test_default_params_are_valid():
    params = parse_params(PARAMS)
    assert params.dataset.unseen == 4 and params.embed.source == "minilm"
    assert params.recursion.all_rounds() == [0, 1, 2, 3]


@pytest.mark.parametrize("key, value, message", [
    ("recursion.threshold", 1.5, "recursion.threshold = 1.5: expected a number in (0, 1]"),
    ("recursion.threshold", 0, "recursion.threshold = 0.0: expected a number in (0, 1]"),
    ("generator.steps", 0, "generator.steps = 0: expected an integer >= 1"),
    ("generator.learning_rate", -0.1, "generator.learning_rate = -0.1: expected a number > 0"),
    ("dataset.unseen", 0, "dataset.unseen = 0"),
    ("dataset.name", "imagenet", "dataset.name = 'imagenet': expected one of demo, folder"),
    ("embed.source", "clip", "embed.source = 'clip': expected one of minilm, glove, word2vec"),
    ("backbone.arch", "resnet9000", "backbone.arch = 'resnet9000'"),
    ("device", "tpu", "device = 'tpu'"),
    ("backbone.epochs", "many", "backbone.epochs = 'many': expected int"),
    ("backbone.checkpoint_minutes", 0, "backbone.checkpoint_minutes = 0.0: expected a number of minutes > 0"),
    ("recursion.rounds", {1: 0, 3: 2}, "recursion.rounds"),
])
def test_bad_values_are_named(key, value, message):
    """The whole-file check (what `zsseg preset` runs); a stage checks the keys it declares."""
    with pytest.raises(ParamsError) as error:
        validate(with_value(key, value))
    assert message in str(error.value)


def test_unknown_key_is_named():
    data = copy.deepcopy(PARAMS)
    data["generator"]["learning_rte"] = 0.1
    with pytest.raises(ParamsError, match="unknown key generator.learning_rte"):
        parse_params(data)


def test_missing_key_is_named():
    data = copy.deepcopy(PARAMS)
    del data["classifier"]["epochs"]
    with pytest.raises(ParamsError, match="missing key classifier.epochs"):
        parse_params(data)


def test_missing_file(tmp_path):
    with pytest.raises(ParamsError, match="parameter file not found"):
        load_params(tmp_path / "params.yaml")


def test_word2vec_needs_a_path():
    with pytest.raises(ParamsError, match="embed.path"):
        validate(with_value("embed.source", "word2vec"))


@pytest.mark.parametrize("key, value, message", [
    ("backbone.weights", "/nowhere/resnet101.pth", "backbone.weights = '/nowhere/resnet101.pth': expected packaged or none"),
    ("backbone.checkpoint", "/nowhere/ckpt.pth", "backbone.checkpoint = '/nowhere/ckpt.pth': expected null or the path"),
    ("backbone.optimizer", "lbfgs", "backbone.optimizer = 'lbfgs': expected one of adamw, sgd"),
    ("backbone.crop_size", 8, "backbone.crop_size = 8: expected null"),
    ("dataset.name", "voc2007",
     "dataset.name = 'voc2007': expected one of demo, folder, voc, context, context33, cocostuff"),
])
def test_backbone_and_dataset_choices_are_checked(key, value, message):
    data = with_value(key, value)
    data["backbone"]["share_encoder_maps"] = False
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(".", r"\.")):
        validate(data)


@pytest.mark.parametrize("key, value, message", [
    ("backbone.freeze_encoder", False,
     "backbone.freeze_encoder = False: expected true with backbone.share_encoder_maps: true (or set it false)"),
    ("backbone.crop_size", 64,
     "backbone.crop_size = 64: expected null with backbone.share_encoder_maps: true (or set it false)"),
    ("backbone.weights", "none",
     "backbone.weights = 'none': expected ImageNet weights with backbone.share_encoder_maps: true"),
])
def test_shared_encoder_maps_need_an_encoder_that_no_cell_changes(key, value, message):
    with pytest.raises(ParamsError, match=re.escape(message)):
        validate(with_value(key, value))
    data = with_value(key, value)
    data["backbone"]["share_encoder_maps"] = False
    validate(data)


def test_missing_imagenet_weights_file_is_named():
    data = with_value("backbone.arch", "deeplabv3plus_resnet101")
    data["backbone"]["weights"] = "/nowhere/resnet101.pth"
    with pytest.raises(ParamsError, match="backbone.weights = '/nowhere/resnet101.pth': expected none or the path"):
        validate(data)


def test_a_stage_reads_only_what_it_declares():
    from zsseg.config import StageParams, UndeclaredParamsError

    params = StageParams(parse_params(copy.deepcopy(PARAMS)), ("seed", "generator", "recursion.rounds"), "round_9")
    assert params.seed == 0 and params.generator.steps == PARAMS["generator"]["steps"]
    assert params.recursion.all_rounds() == [0, 1, 2, 3]  # a method of a section sees the same restriction
    with pytest.raises(UndeclaredParamsError, match="stage round_9 reads params.yaml key classifier, which its"):
        params.classifier
    with pytest.raises(UndeclaredParamsError, match="reads params.yaml key recursion.threshold"):
        params.recursion.threshold
    narrow = StageParams(parse_params(copy.deepcopy(PARAMS)), ("recursion.threshold",), "round_9")
    with pytest.raises(UndeclaredParamsError, match="recursion.rounds"):
        narrow.recursion.all_rounds()
    with pytest.raises(UndeclaredParamsError, match="declares params.yaml key generatr, which does not exist"):
        StageParams(parse_params(copy.deepcopy(PARAMS)), ("generatr",), "round_9")


def test_every_choice_in_params_is_exactly_the_registry_that_implements_it():
    """A Literal field of params.yaml names the entries of one registry in the code: they must agree."""
    import dataclasses
    import typing

    from zsseg import config
    from zsseg.feature_cache import precision_datasets
    from zsseg.generator import INITS, NOISES
    from zsseg.labels import IGNORED_CLASSES
    from zsseg.metrics import ABSENT_CLASSES
    from zsseg.pseudo_features import GUARDS, MINING_POOLS, SELECTIONS, THRESHOLD_RULES, WEIGHTINGS
    from zsseg.sampling import CLASSIFIER_SAMPLINGS
    from zsseg.self_training import SELF_TRAINING_SELECTIONS

    registries = {"generator.noise": NOISES, "generator.init": INITS, "classifier.sampling": CLASSIFIER_SAMPLINGS,
                  "recursion.mining_pool": MINING_POOLS, "recursion.weighting": WEIGHTINGS,
                  "recursion.selection": SELECTIONS, "recursion.thresholds": THRESHOLD_RULES, "recursion.guard": GUARDS, "self_training.selection": SELF_TRAINING_SELECTIONS,
                  "evaluate.absent_classes": ABSENT_CLASSES, "features.precision": precision_datasets(1),
                  "dataset.background": IGNORED_CLASSES}
    choices = {}
    for section, section_type in typing.get_type_hints(config.Params).items():
        if dataclasses.is_dataclass(section_type):
            for name, hint in typing.get_type_hints(section_type).items():
                if typing.get_origin(hint) is typing.Literal:
                    choices[f"{section}.{name}"] = set(typing.get_args(hint))
    assert set(choices) == set(registries)
    for key, registry in registries.items():
        assert choices[key] == set(registry), key
