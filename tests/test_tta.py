"""Test-time augmentation (`evaluate.scales`, `evaluate.flip`): the merge of the views on hand-made cases, the
refusal of bad values, and on the tiny trained run: scales [1.0] without flip is today's evaluation byte for
byte, a flip or a second scale changes the metrics, and `zsseg predict` classifies as the evaluation does."""

import copy
import re

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import PROJECT_ROOT
from stages import evaluate as evaluate_stage
from stages import predict as predict_stage
from zsseg import dense_prediction
from zsseg.classifier import load_classifier
from zsseg.config import ParamsError, parse_params
from zsseg.dense_prediction import TestTimeAugmentation, augmented, dense_labels
from zsseg.evaluation import evaluate_classifiers
from zsseg.feature_extraction import SplitBatch
from zsseg.network import NETWORK_FILE, load_network

CPU = torch.device("cpu")


def softmax(logits: np.ndarray) -> np.ndarray:
    exponentials = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def linear(weight) -> torch.nn.Linear:
    weight = torch.tensor(weight, dtype=torch.float32)
    classifier = torch.nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        classifier.weight.copy_(weight)
        classifier.bias.zero_()
    return classifier


def colour_and_column(images: list[np.ndarray]) -> torch.Tensor:
    """Stand-in features at full resolution: each pixel's RGB / 8 and its column / 8, so that a mirrored image
    does not give mirrored features. Every value is exact in float16, as dense_labels rounds them."""
    batch = np.stack(images).astype(np.float32) / 8
    columns = np.broadcast_to(np.arange(batch.shape[2], dtype=np.float32) / 8, batch.shape[:3])[..., None]
    return torch.from_numpy(np.concatenate([batch, columns], axis=-1))


# logits = RGB / 8 + COLUMN_WEIGHTS * column / 8
COLUMN_WEIGHTS = [1.5, 0.0, -1.5]
COLOUR_AND_COLUMN = linear([[1, 0, 0, COLUMN_WEIGHTS[0]], [0, 1, 0, COLUMN_WEIGHTS[1]], [0, 0, 1, COLUMN_WEIGHTS[2]]])


def test_flip_averages_the_softmax_of_the_image_and_of_its_mirror_mirrored_back():
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 24, size=(5, 8, 3), dtype=np.uint8) for _ in range(2)]
    merged = TestTimeAugmentation(colour_and_column, [1.0], True, CPU).labels([COLOUR_AND_COLUMN], images, "test")[0]

    # By hand: at column x the image's view has logits RGB(x) / 8 + w x / 8; the mirrored image's view, mirrored
    # back, sees the same colour at column W - 1 - x.
    image = np.stack(images).astype(np.float64)
    column = np.arange(8, dtype=np.float64)[None, None, :, None]
    weights = np.array(COLUMN_WEIGHTS)
    unflipped = softmax(image / 8 + weights * column / 8)
    flipped = softmax(image / 8 + weights * (7 - column) / 8)
    expected = ((unflipped + flipped) / 2).argmax(axis=-1)
    assert (unflipped.argmax(-1) != flipped.argmax(-1)).mean() > 0.2   # the two views disagree
    assert np.array_equal(merged.numpy(), expected)
    assert (merged.numpy() != unflipped.argmax(-1)).any() and (merged.numpy() != flipped.argmax(-1)).any()


# Per image height, the logits that constant stand-in features give a constant image: at scale 0.5 (8 rows)
# class 0 wins, at scale 1 (16 rows) class 1; the mean of their logits would pick class 0, the mean of their
# softmax probabilities picks class 1.
LOGITS_BY_HEIGHT = {8: [4.0, 0.0, 3.0], 16: [0.0, 3.0, 0.5]}


def logits_by_height(images: list[np.ndarray]) -> torch.Tensor:
    height, width = images[0].shape[:2]
    return torch.tensor(LOGITS_BY_HEIGHT[height]).expand(len(images), height, width, 3).clone()


def test_scales_average_probabilities_not_logits_at_the_labels_resolution():
    images = [np.full((16, 12, 3), 90, dtype=np.uint8)] * 3
    identity = linear(np.eye(3))
    merged = TestTimeAugmentation(logits_by_height, [0.5, 1.0], False, CPU).labels([identity], images, "test")[0]
    small, large = np.array(LOGITS_BY_HEIGHT[8]), np.array(LOGITS_BY_HEIGHT[16])
    expected = ((softmax(small) + softmax(large)) / 2).argmax()
    assert (expected, ((small + large) / 2).argmax(), small.argmax(), large.argmax()) == (1, 0, 0, 1)
    assert merged.shape == (3, 16, 12) and (merged == expected).all()
    single = TestTimeAugmentation(logits_by_height, [0.5], False, CPU).labels([identity], images, "test")[0]
    assert (single == 0).all()   # the small view alone, upsampled to the labels' 16 x 12


def test_memory_bound_chunks_give_the_same_labels(monkeypatch):
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 24, size=(6, 8, 3), dtype=np.uint8) for _ in range(5)]
    other = linear(rng.normal(size=(4, 4)))
    augmentation = TestTimeAugmentation(colour_and_column, [0.5, 1.0, 1.5], True, CPU)
    # All five images in one chunk; at scale 1.5, passes of the network on 2, 2 and 1 of them.
    whole = augmentation.labels([COLOUR_AND_COLUMN, other], images, "test")
    # One image per chunk.
    monkeypatch.setattr(dense_prediction, "AUGMENTATION_SUM_BYTES", 1)
    chunked = augmentation.labels([COLOUR_AND_COLUMN, other], images, "test")
    assert all(torch.equal(a, b) for a, b in zip(whole, chunked))


def test_one_view_agrees_with_the_plain_argmax_of_the_logits():
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 255, size=(6, 8, 3), dtype=np.uint8) for _ in range(2)]
    plain = dense_labels(COLOUR_AND_COLUMN, colour_and_column(images), (6, 8), CPU, "test")
    one_view = TestTimeAugmentation(colour_and_column, [1.0], False, CPU).labels([COLOUR_AND_COLUMN], images, "test")
    assert torch.equal(plain, one_view[0])
    assert not augmented([1.0], False) and augmented([1.0], True) and augmented([0.75, 1.0], False)


def test_features_at_scale_1_alone_are_refused_with_the_keys_named():
    batch = SplitBatch(["a"], torch.zeros(1, 2, 2, 4), [np.zeros((4, 4), dtype=np.uint8)], [False])
    augmentation = TestTimeAugmentation(colour_and_column, [1.0], True, CPU)
    with pytest.raises(ParamsError, match=r"evaluate.scales = \[1.0\], evaluate.flip = True: .*feature maps"):
        evaluate_classifiers([batch], [COLOUR_AND_COLUMN], 3, CPU, augmentation)


@pytest.mark.parametrize("key, value, expected", [
    ("scales", [], "evaluate.scales = []: expected a non-empty list of finite image scale factors > 0"),
    ("scales", [1.0, 0], "evaluate.scales = [1.0, 0.0]: expected a non-empty list"),
    ("scales", [-0.5], "evaluate.scales = [-0.5]: expected a non-empty list"),
    ("scales", [float("inf")], "evaluate.scales = [inf]: expected a non-empty list"),
    ("scales", 1.5, "evaluate.scales = 1.5: expected a list of float"),
    ("scales", ["big"], "evaluate.scales[0] = 'big': expected float"),
    ("flip", "yes", "evaluate.flip = 'yes': expected bool"),
    ("flip", 1, "evaluate.flip = 1: expected bool"),
])
def test_bad_values_are_refused_with_the_key_named(key, value, expected):
    data = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    data["evaluate"][key] = value
    with pytest.raises(ParamsError, match=re.escape(f"params.yaml: {expected}")):
        parse_params(data)


def test_defaults_are_no_augmentation_even_without_the_keys():
    data = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    assert (parse_params(copy.deepcopy(data)).evaluate.scales, parse_params(copy.deepcopy(data)).evaluate.flip) \
        == ([1.0], False)
    for key in ("scales", "flip"):
        del data["evaluate"][key]
    evaluate = parse_params(data).evaluate
    assert (evaluate.scales, evaluate.flip) == ([1.0], False)


def outputs(directory) -> dict[str, bytes]:
    """Every file the evaluate stage wrote, by its path under ``directory``."""
    return {str(path.relative_to(directory)): path.read_bytes() for path in sorted(directory.rglob("*"))
            if path.is_file()}


def params_file(run, path, **evaluate) -> str:
    """The tiny run's params.yaml without evaluate.scales and evaluate.flip, plus ``evaluate``."""
    data = yaml.safe_load((run / "params.yaml").read_text())
    data["evaluate"] = {key: value for key, value in data["evaluate"].items() if key not in ("scales", "flip")}
    data["evaluate"].update(evaluate)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def evaluations(snakemake_run, tmp_path_factory):
    """The evaluate stage on the tiny run's trained data, into a fresh directory per evaluate section."""
    data = snakemake_run / "data"
    base = tmp_path_factory.mktemp("tta")
    found = {}
    for name, evaluate in (("default", {}), ("explicit", {"scales": [1.0], "flip": False}),
                           ("flip", {"flip": True}), ("scales", {"scales": [0.75, 1.0]})):
        out = base / name
        out.mkdir()
        evaluate_stage.main(["--params", params_file(snakemake_run, out / "params.yaml", **evaluate),
                             "--run", str(data), "--dataset", str(data / "dataset"),
                             "--backbone", str(data / "backbone"), "--encoder", str(data / "encoder_maps.h5"),
                             "--output", str(out / "results" / "metrics"),
                             "--confusion", str(out / "results" / "confusion"),
                             "--dev-output", str(out / "results" / "dev_metrics"),
                             "--headline", str(out / "results" / "headline.json")])
        found[name] = outputs(out / "results")
    return found


def test_one_scale_without_flip_is_todays_evaluation_byte_for_byte(evaluations):
    assert len(evaluations["default"]) > 10 and any(name.startswith("dev_metrics/") for name in evaluations["default"])
    assert evaluations["explicit"] == evaluations["default"]


@pytest.mark.parametrize("augmentation", ["flip", "scales"])
def test_a_flip_or_a_second_scale_changes_the_metrics(evaluations, augmentation):
    assert evaluations[augmentation].keys() == evaluations["default"].keys()
    changed = [name for name, content in evaluations[augmentation].items()
               if name.startswith("metrics/") and content != evaluations["default"][name]]
    assert len(changed) >= 2, changed


def test_predict_classifies_with_the_evaluations_augmentation(snakemake_run, tmp_path):
    data = snakemake_run / "data"
    image_path = sorted((data / "dataset" / "images").iterdir())[0]
    names = (data / "dataset" / "classes.txt").read_text().split("\n")[:-1]
    params = params_file(snakemake_run, tmp_path / "params.yaml", scales=[1.0, 1.25], flip=True)
    predict_stage.main([str(image_path), "--data", str(data), "--params", params, "--out", str(tmp_path / "out"),
                        "--classes", ", ".join(names)])
    labels = np.array(Image.open(tmp_path / "out" / f"{image_path.stem}_labels.png"))
    network, _ = load_network(data / "backbone" / NETWORK_FILE, CPU)
    image = np.array(Image.open(image_path).convert("RGB"))
    augmentation = TestTimeAugmentation.of_network(network, [1.0, 1.25], True, CPU, True)
    expected = augmentation.labels([load_classifier(data / "rounds" / "1")], [image], "test")[0][0]
    assert np.array_equal(labels, expected.numpy())
