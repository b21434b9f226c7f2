"""Bad input is refused when a stage starts, with a message naming the key, value or file and what
was expected, and the stage leaves no output (and no partial output) behind.

Every case runs a real stage's ``main()`` on a real params file or dataset.
"""

import importlib

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_params, write_folder_dataset, write_params
from zsseg.datasets.folder import FolderDataset
from zsseg.embeddings import EmbeddingError
from zsseg.generator import FeatureGenerator
from zsseg.generator import GENERATOR_FILE, load_generator
from zsseg.backbone_training import seen_training_ids

STAGE_OUTPUTS = {"prepare": "dataset", "embed": "embeddings.npz", "backbone": "backbone", "round_0": "rounds/0",
                 "recursive_round": "rounds/1"}


def stage_arguments(stage, params, dataset, data):
    common = ["--params", str(params)]
    if stage == "prepare":
        return common
    if stage == "embed":
        return common + ["--dataset", str(dataset)]
    if stage == "backbone":
        return common + ["--dataset", str(dataset), "--encoder", str(data / "encoder_maps.h5")]
    rounds = ["--features", str(data / "features"), "--samples", str(data / "samples.h5"),
              "--embeddings", str(data / "embeddings.npz")]
    if stage == "round_0":
        return common + rounds
    return common + ["--round", "1", "--previous", str(data / "rounds" / "0")] + rounds


def refuse(stage, tmp_path, capsys, culprit, dataset=None, **overrides):
    """Run ``stage`` with tiny params plus ``overrides``: it must exit 2 naming ``culprit``, writing nothing."""
    params = tiny_params(**{"dataset.name": "folder", "dataset.root": str(dataset or tmp_path / "no_dataset"),
                            **overrides})
    params_path = write_params(tmp_path / "params.yaml", params)
    data = tmp_path / "data"
    output = data / STAGE_OUTPUTS[stage]
    module = importlib.import_module(f"stages.{stage}")
    with pytest.raises(SystemExit) as exit_info:
        module.main(stage_arguments(stage, params_path, dataset, data) + ["--output", str(output)])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    print(message)  # shown by `pytest -rP tests/test_bad_input.py`
    assert culprit in message, message
    assert message.startswith(f"{'round_1' if stage == 'recursive_round' else stage}: error: "), message
    assert not output.exists()
    assert not list(output.parent.glob(f".{output.name}.partial-*"))
    return message


# --- params.yaml: one case per key, checked by the stage that uses it -------------------------------------

PARAMS_CASES = [
    ("recursive_round", {"recursion.rounds": {}}, "recursion.rounds = {}: expected a mapping"),
    ("recursive_round", {"recursion.rounds": {"1": 0, "2": 0}}, "recursion.rounds = {1: 0, 2: 0}"),
    ("round_0", {"generator.steps": 0}, "generator.steps = 0: expected an integer >= 1"),
    ("recursive_round", {"recursion.generator_steps": -3}, "recursion.generator_steps = -3: expected an integer >= 1"),
    ("round_0", {"classifier.learning_rate": 0}, "classifier.learning_rate = 0.0: expected a number > 0"),
    ("backbone", {"backbone.learning_rate": -0.1}, "backbone.learning_rate = -0.1: expected a number > 0"),
    ("recursive_round", {"recursion.threshold": 0}, "recursion.threshold = 0.0: expected a number in (0, 1]"),
    ("recursive_round", {"recursion.threshold": 1.2}, "recursion.threshold = 1.2: expected a number in (0, 1]"),
    ("prepare", {"dataset.unseen": 0}, "dataset.unseen = 0: expected an integer K >= 1"),
    ("prepare", {"dataset.name": "cityscapes"}, "dataset.name = 'cityscapes': expected one of demo, folder, voc"),
    ("backbone", {"backbone.arch": "vit_huge"}, "backbone.arch = 'vit_huge': expected one of efficientnet_lite0"),
    ("embed", {"embed.source": "clip"}, "embed.source = 'clip': expected one of minilm, glove, word2vec"),
    ("backbone", {"backbone.arch": "deeplabv3plus_resnet101", "backbone.weights": "/nowhere/resnet101.pth"},
     "backbone.weights = '/nowhere/resnet101.pth': expected none or the path of an existing"),
    ("embed", {"embed.source": "word2vec", "embed.path": "/nowhere/word2vec.bin"},
     "embed.path = '/nowhere/word2vec.bin': expected the path of an existing word2vec file"),
    ("round_0", {"generator.learning_rte": 0.1}, "unknown key generator.learning_rte"),
    ("round_0", {"classifier.epochs": "many"}, "classifier.epochs = 'many': expected int"),
]


@pytest.mark.parametrize("stage, overrides, culprit", PARAMS_CASES,
                         ids=[next(iter(case[1])) + "=" + str(next(iter(case[1].values()))) for case in PARAMS_CASES])
def test_bad_params_are_refused(tmp_path, capsys, stage, overrides, culprit):
    refuse(stage, tmp_path, capsys, culprit, **overrides)


def test_missing_dataset_root(tmp_path, capsys):
    refuse("prepare", tmp_path, capsys, f"dataset.root = '{tmp_path / 'no_dataset'}': directory not found")


def test_k_larger_than_the_unseen_order(small_dataset, tmp_path, capsys):
    refuse("prepare", tmp_path, capsys, f"dataset.unseen = 5: K must be between 1 and the 1 classes of "
           f"{tmp_path / 'data' / 'dataset' / 'unseen.txt'}",
           dataset=small_dataset, **{"dataset.unseen": 5})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_an_error_not_a_fallback(small_dataset, tmp_path, capsys):
    refuse("backbone", tmp_path, capsys, "device = 'cuda' but no CUDA device is available",
           dataset=small_dataset, **{"device": "cuda", "dataset.unseen": 1})


# --- data files ------------------------------------------------------------------------------------------

def test_truncated_image(small_dataset, tmp_path, capsys):
    path = small_dataset / "images" / "train1.png"
    path.write_bytes(path.read_bytes()[:200])
    refuse("prepare", tmp_path, capsys, f"{path}: unreadable or truncated image", dataset=small_dataset,
           **{"dataset.unseen": 1})


def test_corrupt_label(small_dataset, tmp_path, capsys):
    path = small_dataset / "labels" / "val0.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    refuse("prepare", tmp_path, capsys, f"{path}: unreadable label", dataset=small_dataset, **{"dataset.unseen": 1})


def test_class_name_with_surrounding_whitespace(small_dataset, tmp_path, capsys):
    (small_dataset / "classes.txt").write_text("background\n cat\ndog\n")
    refuse("prepare", tmp_path, capsys, "line 2: class name ' cat' has surrounding whitespace", dataset=small_dataset,
           **{"dataset.unseen": 1})


def test_class_names_that_clash_by_case(small_dataset, tmp_path, capsys):
    (small_dataset / "classes.txt").write_text("background\nDog\ndog\n")
    refuse("prepare", tmp_path, capsys, "class name 'dog' on line 3 clashes with 'Dog' on line 2",
           dataset=small_dataset, **{"dataset.unseen": 1})


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_grayscale_and_rgba_images_are_converted_with_a_note(small_dataset, tmp_path, caplog, mode):
    """Decision: such images are kept and converted to RGB (alpha dropped), and prepare says so."""
    from stages import prepare

    path = small_dataset / "images" / "val1.png"
    Image.open(path).convert(mode).save(path)
    params = write_params(tmp_path / "params.yaml", tiny_params(**{"dataset.name": "folder", "dataset.unseen": 1,
                                                                   "dataset.root": str(small_dataset)}))
    with caplog.at_level("INFO"):
        prepare.main(["--params", str(params), "--output", str(tmp_path / "prepared")])
    assert f"1 image(s) in mode {mode} (e.g. {path}) are converted to RGB" in caplog.text
    assert ("dropping the alpha channel" in caplog.text) == (mode == "RGBA")
    image = FolderDataset(tmp_path / "prepared").load_image("val1")
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8


# --- embeddings --------------------------------------------------------------------------------------------

def word2vec_refusal(small_dataset, tmp_path, capsys, vectors, culprit):
    path = tmp_path / "vectors.npy"
    np.save(path, vectors)
    refuse("embed", tmp_path, capsys, culprit, dataset=small_dataset,
           **{"embed.source": "word2vec", "embed.path": str(path)})


def test_embedding_file_with_a_row_per_other_class(small_dataset, tmp_path, capsys):
    word2vec_refusal(small_dataset, tmp_path, capsys, np.ones((4, 300), np.float32),
                     "has shape (4, 300), expected one row per class (3 rows")


def test_embedding_file_without_a_dimension_per_class(small_dataset, tmp_path, capsys):
    word2vec_refusal(small_dataset, tmp_path, capsys, np.ones(3, np.float32), "has shape (3,), expected one row")


def test_class_with_a_zero_vector(small_dataset, tmp_path, capsys):
    vectors = np.ones((3, 300), np.float32)
    vectors[2] = 0
    word2vec_refusal(small_dataset, tmp_path, capsys, vectors, "row 2 (class 'dog') is all zeros")


def test_class_without_a_word_vector(small_dataset, tmp_path, capsys):
    (small_dataset / "classes.txt").write_text("background\nflibbertigibbetz\ndog\n")
    refuse("embed", tmp_path, capsys, "class 'flibbertigibbetz' has no GloVe vector", dataset=small_dataset)


def test_embeddings_of_another_dimension_than_the_generator(tmp_path):
    generator = FeatureGenerator(300, 8, 16, 4, 0.5)
    torch.save({"config": generator.config(), "state_dict": generator.state_dict()}, tmp_path / GENERATOR_FILE)
    with pytest.raises(EmbeddingError, match="takes 300-d class embeddings, the embeddings have 50 dimensions"):
        load_generator(tmp_path, torch.ones(3, 50))


# --- the training split ------------------------------------------------------------------------------------

def test_seen_class_without_pixels_is_named_in_a_warning(tmp_path):
    """'bird' only occurs beside the unseen 'dog', so dropping those images leaves it no pixel."""
    image = np.zeros((16, 16, 3), np.uint8)
    only_cat, dog_and_bird = np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8)
    only_cat[:8] = 1
    dog_and_bird[:8], dog_and_bird[8:] = 2, 3
    root = write_folder_dataset(tmp_path / "dataset", ["background", "cat", "dog", "bird"],
                                {"train": {"a": (image, only_cat), "b": (image, dog_and_bird)},
                                 "val": {"c": (image, only_cat)}}, ["dog", "bird"])
    dataset = FolderDataset(root)
    messages = []
    kept = seen_training_ids(dataset, dataset.class_split(1), messages.append)
    assert kept == ["a"]
    assert "warning: seen class 'bird' has no pixel in the kept training images" in messages
    assert not any("'cat'" in message for message in messages)
