"""VOC + SBD and Pascal-Context adapters, ZS3Net's unseen orders, and tiny pipelines on each dataset."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SHARED, run_stages_in_process, tiny_params, write_folder_dataset, write_params
from pascal_trees import CONTEXT_NAMES, VOC_NAMES, write_context_tree, write_voc_tree
from zsseg.datasets.folder import DatasetError, FolderDataset
from zsseg.datasets.context import prepare_context
from zsseg.datasets.voc import prepare_voc

# ZS3Net's unseen class indices for K = 10 (the first K for smaller K), from its paper and code.
VOC_UNSEEN_INDICES = [10, 14, 1, 18, 8, 20, 19, 5, 9, 16]
CONTEXT_UNSEEN_INDICES = [20, 34, 49, 15, 8, 25, 7, 55, 32, 1]


def label_of(root, image_id):
    return np.array(Image.open(root / "labels" / f"{image_id}.png"))


def test_voc_train_is_voc_train_plus_sbd_without_duplicates_or_val(tmp_path):
    """The SBD archive as it comes: its own train.txt and val.txt, no train_noval.txt."""
    ids = write_voc_tree(tmp_path / "voc")
    sbd = tmp_path / "voc" / "benchmark_RELEASE" / "dataset"
    assert sorted(path.name for path in sbd.glob("*.txt")) == ["train.txt", "val.txt"]
    log = []
    prepare_voc(tmp_path / "voc", tmp_path / "out", 1, log.append)
    dataset = FolderDataset(tmp_path / "out")
    assert dataset.class_names == tuple(VOC_NAMES)
    assert dataset.ids("train") == [*ids["voc_train"], *ids["sbd_only"]]
    assert dataset.ids("val") == ids["voc_val"]
    print("\n".join(log))  # shown by `pytest -rP`: the prepare log on an archive-only SBD tree
    assert f"SBD ids from {sbd / 'train.txt'} + {sbd / 'val.txt'}: 4" in log
    assert "VOC train 4 + SBD 4 -> 6 train images (duplicates and VOC val images removed); val 2" in log


def test_train_noval_is_used_when_present(tmp_path):
    ids = write_voc_tree(tmp_path / "voc", train_noval=["2007_000039", "2008_000002"])
    log = []
    prepare_voc(tmp_path / "voc", tmp_path / "out", 1, log.append)
    assert FolderDataset(tmp_path / "out").ids("train") == [*ids["voc_train"], "2008_000002"]
    assert f"SBD ids from {tmp_path / 'voc' / 'benchmark_RELEASE' / 'dataset' / 'train_noval.txt'}: 2" in log


def test_missing_sbd_split_file_is_named(tmp_path):
    write_voc_tree(tmp_path / "voc")
    val = tmp_path / "voc" / "benchmark_RELEASE" / "dataset" / "val.txt"
    val.unlink()
    with pytest.raises(DatasetError, match=f"{val}: file not found; expected the SBD archive's train.txt and val.txt"):
        prepare_voc(tmp_path / "voc", tmp_path / "out", 1, print)


def test_voc_labels_keep_palette_indices_and_borders(tmp_path):
    import imgviz

    write_voc_tree(tmp_path / "voc")
    prepare_voc(tmp_path / "voc", tmp_path / "out", 1, print)
    out = tmp_path / "out"
    original = np.array(Image.open(tmp_path / "voc" / "VOC2012" / "SegmentationClass" / "2007_000032.png"))
    np.testing.assert_array_equal(label_of(out, "2007_000032"), original)
    assert {10, 15, 255} <= set(np.unique(label_of(out, "2007_000032")))
    # The id in both VOC train and SBD takes VOC's label, never SBD's (all 13 in this tree).
    assert 13 not in np.unique(label_of(out, "2007_000039"))
    # The real VOC image shipped in imgviz, at its own size.
    np.testing.assert_array_equal(label_of(out, "2007_000033"), imgviz.data.voc()["class_label"])
    image = Image.open(out / "images" / "2007_000033.jpg")
    assert image.size == (500, 375)
    assert os.path.islink(out / "images" / "2007_000033.jpg")


def test_sbd_mat_labels_are_decoded(tmp_path):
    from scipy.io import loadmat

    ids = write_voc_tree(tmp_path / "voc")
    prepare_voc(tmp_path / "voc", tmp_path / "out", 1, print)
    for image_id in ids["sbd_only"]:
        mat = loadmat(tmp_path / "voc" / "benchmark_RELEASE" / "dataset" / "cls" / f"{image_id}.mat")
        expected = mat["GTcls"][0, 0]["Segmentation"]
        np.testing.assert_array_equal(label_of(tmp_path / "out", image_id), expected)


@pytest.mark.parametrize("k", [2, 4, 6, 8, 10])
def test_voc_unseen_indices_follow_zs3net(tmp_path, k):
    write_voc_tree(tmp_path / "voc", with_imgviz=False)
    prepare_voc(tmp_path / "voc", tmp_path / "out", 1, print)
    split = FolderDataset(tmp_path / "out").class_split(k)
    assert list(split.unseen) == VOC_UNSEEN_INDICES[:k]
    assert [split.names[i] for i in split.unseen][:4] == ["cow", "motorbike", "aeroplane", "sofa"][:k]


def test_context_labels_map_459_to_59_with_zs3net_name_fixes(tmp_path):
    tree = write_context_tree(tmp_path / "context")
    prepare_context(tmp_path / "context", tmp_path / "out", 1, print)
    dataset = FolderDataset(tmp_path / "out")
    assert dataset.class_names == tuple(CONTEXT_NAMES)
    assert dataset.ids("train") == tree["splits"]["train"]
    from scipy.io import loadmat

    for image_id in tree["splits"]["train"] + tree["splits"]["val"]:
        full = loadmat(tmp_path / "context" / "full_annotations" / "trainval" / f"{image_id}.mat")["LabelMap"]
        label = label_of(tmp_path / "out", image_id)
        assert label[0, 0] == 0   # "accordion" is not one of the 59
        for value in np.unique(full):
            if value == 0 or tree["full_names"][value - 1] == "accordion":
                continue
            full_name = tree["full_names"][value - 1]
            task_name = {"table": "diningtable", "bedclothes": "bedcloth", "cloth": "clothes"}.get(full_name, full_name)
            assert set(np.unique(label[full == value])) == {CONTEXT_NAMES.index(task_name)}
    # The diningtable pixels of the last val image come from the 459 list's "table".
    assert CONTEXT_NAMES.index("diningtable") in np.unique(label_of(tmp_path / "out", "2008_000021"))


@pytest.mark.parametrize("k", [2, 4, 6, 8, 10])
def test_context_unseen_indices_follow_zs3net(tmp_path, k):
    write_context_tree(tmp_path / "context")
    prepare_context(tmp_path / "context", tmp_path / "out", 1, print)
    assert list(FolderDataset(tmp_path / "out").class_split(k).unseen) == CONTEXT_UNSEEN_INDICES[:k]


@pytest.mark.parametrize("name, size", [("voc", 21), ("context", 60)])
def test_zs3net_word2vec_rows_align_with_the_class_lists(name, size):
    from zsseg.embeddings import class_embeddings

    names = VOC_NAMES if name == "voc" else CONTEXT_NAMES
    raw = np.load(SHARED / "data" / "zs3net_word2vec" / f"{name}_word2vec_300.npy")
    assert raw.shape == (size, 300) == (len(names), 300)
    vectors = class_embeddings(names, "word2vec", str(SHARED / "data" / "zs3net_word2vec" / f"{name}_word2vec_300.npy"))
    row = names.index("cow")
    np.testing.assert_allclose(vectors[row], raw[row] / np.linalg.norm(raw[row]), rtol=1e-5)


def run_stages(tmp_path, params: dict) -> dict:
    """prepare -> embed -> backbone -> features -> every method -> evaluate, in process."""
    run_stages_in_process(write_params(tmp_path / "params.yaml", params), tmp_path / "data")
    return json.loads((tmp_path / "data" / "metrics" / "round_1.json").read_text())


def crop_training(**overrides) -> dict:
    # A handful of images and one epoch: whether round 1 finds a confident unseen pixel is chance, and
    # these runs check the datasets' path through every stage, not the mining.
    # Random crops train the encoder on other inputs than whole images: nothing to share between cells.
    return tiny_params(**{"backbone.crop_size": 48, "backbone.share_encoder_maps": False,
                          "backbone.batch_size": 4, "classifier.generated_per_class": 20,
                          "generator.real_features_per_class": 50, "recursion.allow_empty_rounds": True,
                          **overrides})


@pytest.mark.pipeline
def test_tiny_voc_pipeline_with_resnet101_deeplabv3plus(tmp_path):
    write_voc_tree(tmp_path / "voc")
    metrics = run_stages(tmp_path, crop_training(**{
        "dataset.name": "voc", "dataset.root": str(tmp_path / "voc"), "dataset.unseen": 2,
        "embed.source": "word2vec", "embed.path": str(SHARED / "data" / "zs3net_word2vec" / "voc_word2vec_300.npy"),
        "backbone.arch": "deeplabv3plus_resnet101", "backbone.weights": "none", "backbone.aspp_rates": [6, 12, 18],
        "backbone.freeze_encoder": False, "backbone.optimizer": "sgd", "backbone.learning_rate": 0.007,
        "backbone.head_lr_multiplier": 10.0}))
    assert set(metrics["per_class_iou"]) <= set(VOC_NAMES)
    assert 0 <= metrics["hiou"] <= 100
    from zsseg.feature_cache import LABELLED_FILE, FeatureCache
    from zsseg.feature_extraction import split_features
    from zsseg.network import NETWORK_FILE, load_network

    assert FeatureCache(tmp_path / "data" / "features" / LABELLED_FILE).stride == 4
    network, _ = load_network(tmp_path / "data" / "backbone" / NETWORK_FILE, torch.device("cpu"))
    batch = next(split_features(network, FolderDataset(tmp_path / "data" / "dataset"), "val", 1, torch.device("cpu")))
    assert batch.labels[0].shape == (375, 500)                 # evaluated at its own, full resolution
    assert tuple(batch.features.shape[1:3]) == (94, 125)


@pytest.mark.pipeline
def test_tiny_context_pipeline(tmp_path):
    write_context_tree(tmp_path / "context")
    metrics = run_stages(tmp_path, crop_training(**{
        "dataset.name": "context", "dataset.root": str(tmp_path / "context"), "dataset.unseen": 2,
        "embed.source": "word2vec",
        "embed.path": str(SHARED / "data" / "zs3net_word2vec" / "context_word2vec_300.npy")}))
    assert "cow" in metrics["per_class_iou"] and "motorbike" in metrics["per_class_iou"]


@pytest.mark.pipeline
def test_tiny_folder_pipeline_with_mixed_sizes(tmp_path):
    rng = np.random.default_rng(2)
    splits = {}
    for split, count in (("train", 8), ("val", 3)):
        items = {}
        for index in range(count):
            height, width = (40, 56) if index % 2 else (64, 48)
            image = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
            label = np.zeros((height, width), dtype=np.uint8)
            label[4:20, 4:20] = 1 + index % 3
            items[f"{split}{index}"] = (image, label)
        splits[split] = items
    root = write_folder_dataset(tmp_path / "mine", ["background", "cat", "dog", "bird"], splits, ["dog"])
    metrics = run_stages(tmp_path, crop_training(**{"dataset.name": "folder", "dataset.root": str(root),
                                                    "dataset.unseen": 1}))
    assert set(metrics["per_class_iou"]) <= {"background", "cat", "dog", "bird"}


@pytest.mark.parametrize("name", ["voc", "folder"])
def test_the_backbone_warns_about_full_imagenet_weights_on_pascal_only(tmp_path, caplog, name):
    from stages import backbone, prepare

    if name == "voc":
        write_voc_tree(tmp_path / "source")
    else:
        write_folder_dataset(tmp_path / "source", ["background", "cat", "dog"],
                             {split: {f"{split}{i}": (np.zeros((48, 48, 3), np.uint8), np.eye(48, dtype=np.uint8))
                                      for i in range(3)} for split in ("train", "val")}, ["dog"])
    params = write_params(tmp_path / "params.yaml", crop_training(**{
        "dataset.name": name, "dataset.root": str(tmp_path / "source"), "dataset.unseen": 1,
        "backbone.weights": "packaged", "backbone.epochs": 1}))
    prepare.main(["--params", str(params), "--output", str(tmp_path / "dataset")])
    with caplog.at_level("WARNING"):
        backbone.main(["--params", str(params), "--dataset", str(tmp_path / "dataset"),
                       "--encoder", str(tmp_path / "encoder_maps.h5"), "--output", str(tmp_path / "backbone")])
    warned = "trained on all 1000 ImageNet-1k classes" in caplog.text
    assert warned == (name == "voc"), caplog.text
