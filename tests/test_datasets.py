"""The folder loader and its errors on broken folders."""

import shutil

import numpy as np
import pytest
from PIL import Image

from zsseg.datasets.folder import DatasetError, FolderDataset
from zsseg.datasets.demo import CLASS_NAMES, UNSEEN_ORDER


def test_loads_images_labels_and_split(small_dataset):
    dataset = FolderDataset(small_dataset)
    assert dataset.class_names == ("background", "cat", "dog")
    assert dataset.unseen_order == ("dog",)
    assert dataset.ids("train") == ["train0", "train1"]
    image, label = dataset.load("train0")
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert label.shape == (32, 32) and set(np.unique(label)) == {0, 1, 2, 255}


def test_class_split_by_count_and_by_names(small_dataset):
    dataset = FolderDataset(small_dataset)
    split = dataset.class_split(1)
    assert split.unseen == (2,) and split.seen == (0, 1)
    assert dataset.class_split(["cat"]).unseen == (1,)
    table = split.seen_label_map()
    assert table[0] == 0 and table[1] == 1 and table[2] == 255 and table[255] == 255
    with_dog, without_dog = np.array([[0, 1], [2, 255]], np.uint8), np.array([[0, 1], [1, 255]], np.uint8)
    assert split.is_unlabelled(with_dog) and not split.is_unlabelled(without_dog)
    hidden, unlabelled = split.training_label(with_dog)
    assert unlabelled and (hidden == 255).all()            # not even its seen pixels are kept
    kept, unlabelled = split.training_label(without_dog)
    assert not unlabelled and (kept == without_dog).all()


def test_demo_unseen_order_is_nested_and_compositional():
    assert len(CLASS_NAMES) == 17 and CLASS_NAMES[0] == "background"
    assert UNSEEN_ORDER[:4] == ("blue square", "yellow triangle", "red ring", "green circle")
    for k in range(2, 11):
        unseen = set(UNSEEN_ORDER[:k])
        seen = [name for name in CLASS_NAMES[1:] if name not in unseen]
        for name in unseen:
            colour, shape = name.split()
            assert any(s.startswith(colour + " ") for s in seen), (k, name)
            assert any(s.endswith(" " + shape) for s in seen), (k, name)


def test_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="nowhere: dataset directory not found"):
        FolderDataset(tmp_path / "nowhere")


def test_missing_classes_file(small_dataset):
    (small_dataset / "classes.txt").unlink()
    with pytest.raises(DatasetError, match="classes.txt: file not found"):
        FolderDataset(small_dataset)


def test_duplicate_class_name(small_dataset):
    (small_dataset / "classes.txt").write_text("background\ncat\ncat\n")
    with pytest.raises(DatasetError, match="duplicate class name 'cat' on lines 2 and 3"):
        FolderDataset(small_dataset)


def test_unseen_file_names_unknown_class(small_dataset):
    (small_dataset / "unseen.txt").write_text("unicorn\n")
    with pytest.raises(DatasetError, match="unseen class 'unicorn' is not in classes.txt"):
        FolderDataset(small_dataset)


def test_k_larger_than_unseen_order(small_dataset):
    with pytest.raises(DatasetError, match="dataset.unseen = 2: K must be between 1 and the 1"):
        FolderDataset(small_dataset).class_split(2)


def test_unseen_name_not_a_class(small_dataset):
    with pytest.raises(DatasetError, match="'horse' is not a class"):
        FolderDataset(small_dataset).class_split(["horse"])


def test_background_cannot_be_unseen(small_dataset):
    with pytest.raises(DatasetError, match="background class"):
        FolderDataset(small_dataset).class_split(["background"])


def test_missing_split_file(small_dataset):
    (small_dataset / "val.txt").unlink()
    with pytest.raises(DatasetError, match="val.txt: file not found"):
        FolderDataset(small_dataset).ids("val")


def test_empty_split(small_dataset):
    (small_dataset / "train.txt").write_text("\n")
    with pytest.raises(DatasetError, match="the train split is empty"):
        FolderDataset(small_dataset).ids("train")


def test_duplicate_id(small_dataset):
    (small_dataset / "train.txt").write_text("train0\ntrain1\ntrain0\n")
    with pytest.raises(DatasetError, match="duplicate id 'train0'"):
        FolderDataset(small_dataset).ids("train")


def test_id_without_image(small_dataset):
    (small_dataset / "images" / "train1.png").unlink()
    with pytest.raises(DatasetError, match="image of id 'train1' not found"):
        FolderDataset(small_dataset).ids("train")


def test_id_without_label(small_dataset):
    (small_dataset / "labels" / "val0.png").unlink()
    with pytest.raises(DatasetError, match="val0.png: label of id 'val0'"):
        FolderDataset(small_dataset).ids("val")


def test_label_value_out_of_range(small_dataset):
    label = np.zeros((32, 32), dtype=np.uint8)
    label[5, 5] = 9
    Image.fromarray(label, mode="L").save(small_dataset / "labels" / "train1.png")
    with pytest.raises(DatasetError, match="train1.png: label value 9 is not a class index"):
        FolderDataset(small_dataset).load("train1")


def test_image_label_size_mismatch(small_dataset):
    Image.fromarray(np.zeros((16, 32), dtype=np.uint8), mode="L").save(small_dataset / "labels" / "train0.png")
    with pytest.raises(DatasetError, match="train0.png: label size 32x16 does not match its image"):
        FolderDataset(small_dataset).load("train0")


def test_corrupt_image(small_dataset):
    (small_dataset / "images" / "val1.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="val1.png: unreadable image"):
        FolderDataset(small_dataset).load("val1")


def test_rgb_label_is_refused(small_dataset):
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(small_dataset / "labels" / "val0.png")
    with pytest.raises(DatasetError, match="single-channel PNG"):
        FolderDataset(small_dataset).load("val0")


def test_jpeg_images_are_found(small_dataset, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(small_dataset, copy)
    image_path = copy / "images" / "train0.png"
    Image.open(image_path).convert("RGB").save(copy / "images" / "train0.jpg", quality=95)
    image_path.unlink()
    assert FolderDataset(copy).image_path("train0").suffix == ".jpg"
