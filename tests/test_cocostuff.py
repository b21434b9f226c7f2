"""COCO-Stuff 164k: its README's layout, the 182 annotation ids mapped onto the 171 used classes, SPNet's
15 unseen classes, the protocol's unlabelled images, the preset, and a tiny pipeline on a layout-true tree."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import PROJECT_ROOT, tiny_params, write_params
from test_presets import apply, leaves
from zsseg.backbone_training import seen_training_ids
from zsseg.config import load_params
from zsseg.datasets.cocostuff import prepare_cocostuff
from zsseg.datasets.folder import DatasetError, FolderDataset
from zsseg.datasets.registry import prepare_dataset
from zsseg.presets import PRESETS as PRESETS_DIRECTORY

# Written out from the sources, independently of the code under test.
# labels.md of github.com/nightrome/cocostuff: the 11 COCO ids marked "Removed from COCO." (1-based; the
# stuffthingmaps store id - 1, and 255 for 'unlabeled').
UNUSED_COCO_IDS = [12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91]
UNUSED_NAMES = ["street sign", "hat", "shoe", "eye glasses", "plate", "mirror", "window", "desk", "door", "blender",
                "hair brush"]
# PNG index -> (class index among the 171, name): each side of every gap of unused ids, both ends.
GAP_NEIGHBOURS = {0: (0, "person"), 10: (10, "fire hydrant"), 12: (11, "stop sign"), 24: (23, "giraffe"),
                  26: (24, "backpack"), 27: (25, "umbrella"), 30: (26, "handbag"), 43: (39, "bottle"),
                  45: (40, "wine glass"), 64: (59, "bed"), 66: (60, "dining table"), 69: (61, "toilet"),
                  71: (62, "tv"), 81: (72, "refrigerator"), 83: (73, "book"), 89: (79, "toothbrush"),
                  91: (80, "banner"), 123: (112, "grass"), 171: (160, "wall-concrete"), 181: (170, "wood")}
# SPNet's data/datasets/cocostuff/split/novel_cls.npy (PNG indices; CaGNet's file holds the same), with the
# names of its labels_2.txt, and their indices among the 171.
SPNET_NOVEL = [(20, "cow", 19), (24, "giraffe", 23), (32, "suitcase", 28), (33, "frisbee", 29),
               (40, "skateboard", 36), (56, "carrot", 51), (86, "scissors", 76), (99, "cardboard", 88),
               (105, "clouds", 94), (123, "grass", 112), (144, "playingfield", 133), (147, "river", 136),
               (148, "road", 137), (168, "tree", 157), (171, "wall-concrete", 160)]
SPNET_UNSEEN = [name for _, name, _ in SPNET_NOVEL]

# (split, COCO image id, PNG indices in it, (height, width)). Train: two images of seen classes only, around
# every gap; one whose only classes are unseen; one with a seen and an unseen class.
TREE = [
    ("train2017", "000000000009", [0, 10, 12, 26, 27, 30, 43, 45], (48, 64)),
    ("train2017", "000000000025", [64, 66, 69, 71, 81, 83, 89, 91, 181], (64, 48)),
    ("train2017", "000000000030", [24, 123, 171], (40, 56)),
    ("train2017", "000000000034", [0, 168], (48, 48)),
    ("val2017", "000000000139", [0, 24, 123, 91], (48, 64)),
    ("val2017", "000000000285", [20, 148, 181], (56, 40)),
]
SEEN_ONLY, UNSEEN_ONLY, MIXED = "000000000009", "000000000030", "000000000034"


def expected_label(annotation: np.ndarray) -> np.ndarray:
    """An annotation's indices among the 171: its index less the unused ids below it; 255 stays."""
    below = np.array([sum(coco_id - 1 < value for coco_id in UNUSED_COCO_IDS) for value in range(256)])
    return np.where(annotation == 255, 255, annotation - below[annotation]).astype(np.uint8)


def scene(classes: list[int], size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Vertical bands, one per class, in flat colours; 255 on the image's border and between the bands."""
    height, width = size
    label = np.zeros(size, dtype=np.uint8)
    image = np.zeros((*size, 3), dtype=np.uint8)
    edges = np.linspace(0, width, len(classes) + 1).astype(int)
    for value, start, stop in zip(classes, edges[:-1], edges[1:]):
        label[:, start:stop] = value
        image[:, start:stop] = ((value * 53) % 255, (value * 97) % 255, (value * 151) % 255)
        label[:, start] = 255
    label[[0, -1], :] = label[:, [0, -1]] = 255
    noise = rng.integers(0, 12, size=image.shape, dtype=np.uint8)
    return image + noise, label


def write_cocostuff_tree(root, tree=TREE, seed=0) -> dict:
    """images/{train,val}2017/ID.jpg and annotations/{train,val}2017/ID.png (single channel), as the
    README's setup commands unpack them. One JPEG is grayscale, as some of COCO's are."""
    rng = np.random.default_rng(seed)
    annotations = {}
    for split, image_id, classes, size in tree:
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
        image, label = scene(classes, size, rng)
        picture = Image.fromarray(image)
        if image_id == MIXED:
            picture = picture.convert("L")
        picture.save(root / "images" / split / f"{image_id}.jpg", quality=95)
        Image.fromarray(label, mode="L").save(root / "annotations" / split / f"{image_id}.png")
        annotations[image_id] = label
    return annotations


def label_of(root, image_id):
    return np.array(Image.open(root / "labels" / f"{image_id}.png"))


def test_ids_map_onto_the_171_used_classes_and_255_stays(tmp_path):
    annotations = write_cocostuff_tree(tmp_path / "cocostuff")
    log = []
    prepare_dataset("cocostuff", tmp_path / "cocostuff", tmp_path / "out", 1, log.append)
    print("\n".join(log))   # shown by `pytest -rP`: the prepare log on the tiny tree
    dataset = FolderDataset(tmp_path / "out")
    assert dataset.ids("train") == ["000000000009", "000000000025", "000000000030", "000000000034"]
    assert dataset.ids("val") == ["000000000139", "000000000285"]
    assert dataset.source["dataset"] == "cocostuff" and dataset.source["imagenet_overlap"] is False
    for image_id, annotation in annotations.items():
        label = label_of(tmp_path / "out", image_id)
        np.testing.assert_array_equal(label, expected_label(annotation))
        assert (label == 255).sum() == (annotation == 255).sum() > 0
        image, loaded = dataset.load(image_id)   # the grayscale JPEG comes back as RGB, at its label's size
        assert image.shape == (*label.shape, 3) and np.array_equal(loaded, label)
    for value, (index, name) in GAP_NEIGHBOURS.items():
        holder = next(image_id for _, image_id, classes, _ in TREE if value in classes)
        annotation = annotations[holder]
        assert set(np.unique(label_of(tmp_path / "out", holder)[annotation == value])) == {index}
        assert dataset.class_names[index] == name
    assert any(line.startswith("COCO-Stuff: 4 train2017 and 2 val2017 images; 171 classes") for line in log)


def test_class_names_are_the_datasets_own(tmp_path):
    write_cocostuff_tree(tmp_path / "cocostuff")
    prepare_cocostuff(tmp_path / "cocostuff", tmp_path / "out", 1, print)
    names = FolderDataset(tmp_path / "out").class_names
    assert len(names) == 171 and names[0] == "person" and names[79] == "toothbrush" and names[80] == "banner"
    assert names[-1] == "wood" and "wall-concrete" in names and "sky-other" in names and "playingfield" in names
    assert not set(UNUSED_NAMES) & set(names)
    # The four thing ids that are also stuff keep COCO-Stuff's suffix; the thing ids themselves are unused.
    assert {"desk-stuff", "door-stuff", "mirror-stuff", "window-other"} <= set(names)


@pytest.mark.parametrize("value, culprit", [
    (11, "label value 11 is COCO id 12 ('street sign'), one of the 11 without segmentation annotations"),
    (90, "label value 90 is COCO id 91 ('hair brush'), one of the 11 without segmentation annotations"),
    (182, "label value 182 is above 181"),
])
def test_an_unused_or_unknown_index_is_refused(tmp_path, value, culprit):
    write_cocostuff_tree(tmp_path / "cocostuff")
    path = tmp_path / "cocostuff" / "annotations" / "val2017" / "000000000285.png"
    annotation = np.array(Image.open(path))
    annotation[5:9, 5:9] = value
    Image.fromarray(annotation, mode="L").save(path)
    with pytest.raises(DatasetError) as error:
        prepare_cocostuff(tmp_path / "cocostuff", tmp_path / "out", 1, print)
    assert str(error.value).startswith(f"{path}: {culprit}")


def test_a_missing_annotation_or_image_folder_is_named(tmp_path):
    write_cocostuff_tree(tmp_path / "cocostuff")
    missing = tmp_path / "cocostuff" / "annotations" / "train2017" / "000000000025.png"
    missing.unlink()
    with pytest.raises(DatasetError, match=f"{missing}: label of id '000000000025' not found"):
        prepare_cocostuff(tmp_path / "cocostuff", tmp_path / "out", 1, print)
    write_cocostuff_tree(tmp_path / "second")
    shutil.rmtree(tmp_path / "second" / "images" / "val2017")
    with pytest.raises(DatasetError, match=f"{tmp_path / 'second' / 'images' / 'val2017'}: directory not found"):
        prepare_cocostuff(tmp_path / "second", tmp_path / "out2", 1, print)


def test_spnets_unseen_split_is_k_15_and_the_explicit_list(tmp_path):
    write_cocostuff_tree(tmp_path / "cocostuff")
    prepare_cocostuff(tmp_path / "cocostuff", tmp_path / "out", 1, print)
    dataset = FolderDataset(tmp_path / "out")
    by_list, by_k = dataset.class_split(SPNET_UNSEEN), dataset.class_split(15)
    assert by_list == by_k
    assert list(by_list.unseen) == [index for _, _, index in SPNET_NOVEL]
    assert [by_list.names[index] for index in by_list.unseen] == SPNET_UNSEEN
    assert len(by_list.seen) == 156
    # The issue's list, in its own order: the same classes.
    issue = ["frisbee", "skateboard", "cardboard", "carrot", "scissors", "suitcase", "giraffe", "cow", "road",
             "wall-concrete", "tree", "grass", "river", "clouds", "playingfield"]
    assert sorted(dataset.class_split(issue).unseen) == sorted(by_list.unseen)


def test_an_image_with_an_unseen_pixel_is_unlabelled_for_training(tmp_path):
    """The protocol's bit: a training image holding any unseen pixel gives no label to any training stage,
    whether its only classes are unseen or it has seen ones too."""
    write_cocostuff_tree(tmp_path / "cocostuff")
    prepare_cocostuff(tmp_path / "cocostuff", tmp_path / "out", 1, print)
    dataset = FolderDataset(tmp_path / "out")
    split = dataset.class_split(SPNET_UNSEEN)
    only_unseen = dataset.load_label(UNSEEN_ONLY)
    assert set(np.unique(only_unseen)) - {255} <= set(split.unseen)
    for image_id in (UNSEEN_ONLY, MIXED):
        label, unlabelled = split.training_label(dataset.load_label(image_id))
        assert unlabelled and (label == 255).all()
    label, unlabelled = split.training_label(dataset.load_label(SEEN_ONLY))
    assert not unlabelled and np.array_equal(label, dataset.load_label(SEEN_ONLY))
    log = []
    assert seen_training_ids(dataset, split, log.append) == ["000000000009", "000000000025"]
    assert "kept 2 of 4 training images; dropped 2 with unseen pixels" in log


def test_the_prepare_stage_holds_out_dev_and_resolves_the_split(tmp_path):
    from stages import prepare

    write_cocostuff_tree(tmp_path / "cocostuff")
    params = write_params(tmp_path / "params.yaml", tiny_params(**{
        "dataset.name": "cocostuff", "dataset.root": str(tmp_path / "cocostuff"), "dataset.unseen": SPNET_UNSEEN,
        "dataset.dev_fraction": 0.25}))
    prepare.main(["--params", str(params), "--output", str(tmp_path / "dataset")])
    dataset = FolderDataset(tmp_path / "dataset")
    assert len(dataset.ids("dev")) == 1 and len(dataset.ids("train")) == 3 and len(dataset.ids("val")) == 2
    assert not set(dataset.ids("dev")) & set(dataset.ids("train"))


# --- the preset ---------------------------------------------------------------------------------------

def test_the_preset_holds_only_what_differs_from_params_yaml():
    import yaml

    base = leaves(yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text()))
    overlay = leaves(yaml.safe_load((PRESETS_DIRECTORY / "cocostuff.yaml").read_text()))
    assert overlay and set(overlay) <= set(base)
    assert [key for key, value in overlay.items() if base[key] == value] == []


def test_the_preset_with_paths_gives_spnets_split(tmp_path):
    weights, vectors = tmp_path / "resnet101.pth", tmp_path / "cocostuff_word2vec_300.npy"
    weights.write_bytes(b"")
    np.save(vectors, np.ones((171, 300), dtype=np.float32))
    params = load_params(apply(tmp_path, "cocostuff", f"dataset.root={tmp_path}", f"backbone.weights={weights}",
                               f"embed.path={vectors}"))
    assert params.dataset.name == "cocostuff" and params.dataset.root == str(tmp_path)
    assert params.dataset.unseen == SPNET_UNSEEN and params.table.k_values == [15]
    assert params.dataset.dev_fraction == 0.017
    assert (params.embed.source, params.embed.path) == ("word2vec", str(vectors))
    assert (params.backbone.arch, params.backbone.crop_size, params.backbone.optimizer) == \
        ("deeplabv3plus_resnet101", 312, "sgd")
    assert "unseen: [cow, giraffe, suitcase, frisbee" in (tmp_path / "params.yaml").read_text()   # one line


def test_the_preset_refuses_its_placeholder_paths(tmp_path, capsys):
    with pytest.raises(SystemExit):
        apply(tmp_path, "cocostuff")
    assert ("dataset.root = '/path/to/cocostuff/dataset': fill in your path with --set dataset.root=PATH"
            in capsys.readouterr().err)


# --- a tiny pipeline ----------------------------------------------------------------------------------

@pytest.mark.pipeline
def test_tiny_cocostuff_pipeline_to_per_class_metrics(tmp_path):
    from test_pascal import crop_training, run_stages

    rng = np.random.default_rng(7)
    seen_values = [0, 10, 12, 26, 27, 30, 43, 45, 64, 66, 69, 71, 81, 83, 89, 91, 181]
    extra = [("train2017", f"{900 + i:012d}", sorted(rng.choice(seen_values, size=3, replace=False).tolist()),
              (48, 64)) for i in range(8)]
    extra += [("train2017", f"{950 + i:012d}", [int(rng.choice(seen_values)), value], (48, 64))
              for i, value in enumerate((20, 24, 123, 148, 168, 171))]
    write_cocostuff_tree(tmp_path / "cocostuff", tree=TREE + extra)
    metrics = run_stages(tmp_path, crop_training(**{
        "dataset.name": "cocostuff", "dataset.root": str(tmp_path / "cocostuff"), "dataset.unseen": SPNET_UNSEEN,
        "embed.source": "minilm"}))
    print(json.dumps({key: metrics[key] for key in ("miou", "seen_miou", "unseen_miou", "hiou")}))
    assert len(metrics["per_class_iou"]) == 171 and metrics["unseen_classes"] == SPNET_UNSEEN   # in index order
    measured = {name for name, value in metrics["per_class_iou"].items() if value is not None}
    print(json.dumps({name: metrics["per_class_iou"][name] for name in sorted(measured)}))   # `pytest -rP`
    assert {"person", "giraffe", "grass", "cow", "road", "wood", "banner"} <= measured
