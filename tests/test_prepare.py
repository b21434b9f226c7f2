"""The `prepare` stage refuses broken datasets with the culprit named, and leaves no output behind."""

import numpy as np
import pytest
from PIL import Image

from conftest import tiny_params, write_params
from pascal_trees import write_voc_tree


def break_missing_file(root):
    (root / "classes.txt").unlink()
    return "classes.txt: file not found"


def break_id_without_image(root):
    (root / "images" / "train1.png").unlink()
    return "image of id 'train1' not found"


def break_id_without_label(root):
    (root / "labels" / "val0.png").unlink()
    return "val0.png: label of id 'val0'"


def break_label_value(root):
    label = np.zeros((32, 32), dtype=np.uint8)
    label[3, 3] = 7
    Image.fromarray(label, mode="L").save(root / "labels" / "val1.png")
    return "val1.png: label value 7 is not a class index"


def break_size(root):
    Image.fromarray(np.zeros((16, 32), dtype=np.uint8), mode="L").save(root / "labels" / "train0.png")
    return "train0.png: label size 32x16 does not match its image"


def break_empty_split(root):
    (root / "val.txt").write_text("\n")
    return "the val split is empty"


def break_duplicate_id(root):
    (root / "train.txt").write_text("train0\ntrain1\ntrain1\n")
    return "duplicate id 'train1'"


def break_duplicate_class(root):
    (root / "classes.txt").write_text("background\ncat\ncat\n")
    return "duplicate class name 'cat'"


def break_id_in_train_and_val(root):
    (root / "val.txt").write_text("val0\ntrain1\n")
    return "train.txt: id 'train1' is also in val.txt; a split must not share images with another"


def break_id_in_train_and_dev(root):
    (root / "dev.txt").write_text("train0\n")
    return "train.txt: id 'train0' is also in dev.txt"


CASES = [break_missing_file, break_id_without_image, break_id_without_label, break_label_value, break_size,
         break_empty_split, break_duplicate_id, break_duplicate_class, break_id_in_train_and_val,
         break_id_in_train_and_dev]


def run_prepare(tmp_path, **overrides):
    from stages import prepare

    params = write_params(tmp_path / "params.yaml", tiny_params(**overrides))
    output = tmp_path / "data" / "dataset"
    with pytest.raises(SystemExit) as exit_info:
        prepare.main(["--params", str(params), "--output", str(output)])
    assert exit_info.value.code == 2
    assert not output.exists()
    assert not list((tmp_path / "data").glob(".dataset.partial-*"))


@pytest.mark.parametrize("breakage", CASES, ids=[case.__name__ for case in CASES])
def test_broken_folder_is_refused_without_output(small_dataset, tmp_path, capsys, breakage):
    expected = breakage(small_dataset)
    run_prepare(tmp_path, **{"dataset.name": "folder", "dataset.root": str(small_dataset), "dataset.unseen": 1})
    assert expected in capsys.readouterr().err


def test_unseen_name_that_is_not_a_class(small_dataset, tmp_path, capsys):
    run_prepare(tmp_path, **{"dataset.name": "folder", "dataset.root": str(small_dataset),
                             "dataset.unseen": ["unicorn"]})
    assert "dataset.unseen: 'unicorn' is not a class" in capsys.readouterr().err


def test_k_larger_than_the_unseen_order(small_dataset, tmp_path, capsys):
    run_prepare(tmp_path, **{"dataset.name": "folder", "dataset.root": str(small_dataset), "dataset.unseen": 3})
    assert "dataset.unseen = 3: K must be between 1 and the 1" in capsys.readouterr().err


def test_missing_dataset_root(tmp_path, capsys):
    run_prepare(tmp_path, **{"dataset.name": "voc", "dataset.root": str(tmp_path / "VOCdevkit")})
    assert "VOCdevkit' : directory not found".replace("' ", "'") in capsys.readouterr().err


def test_corrupt_sbd_mat_is_named(tmp_path, capsys):
    write_voc_tree(tmp_path / "voc", with_imgviz=False)
    broken = tmp_path / "voc" / "benchmark_RELEASE" / "dataset" / "cls" / "2008_000003.mat"
    broken.write_bytes(b"MATLAB 5.0 truncated")
    run_prepare(tmp_path, **{"dataset.name": "voc", "dataset.root": str(tmp_path / "voc"), "dataset.unseen": 2})
    assert "2008_000003.mat: unreadable .mat file" in capsys.readouterr().err


def test_a_dataset_without_dev_split_gets_one_held_out_of_train(tmp_path):
    """dataset.dev_fraction of train becomes dev, drawn by dataset.dev_seed, and leaves train."""
    from conftest import write_folder_dataset
    from stages import prepare
    from zsseg.datasets.folder import FolderDataset

    rng = np.random.default_rng(0)
    items = {f"train{i}": (rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), np.zeros((16, 16), np.uint8))
             for i in range(20)}
    root = write_folder_dataset(tmp_path / "dataset", ["background", "cat"],
                                {"train": items, "val": {"val0": items["train0"]}}, ["cat"])
    held = {}
    for seed in (0, 0, 1):
        params = write_params(tmp_path / "params.yaml", tiny_params(**{
            "dataset.name": "folder", "dataset.root": str(root), "dataset.unseen": 1, "dataset.dev_fraction": 0.25,
            "dataset.dev_seed": seed}))
        output = tmp_path / f"prepared{len(held)}"
        prepare.main(["--params", str(params), "--output", str(output)])
        dataset = FolderDataset(output)
        dev, train = dataset.ids("dev"), dataset.ids("train")
        assert len(dev) == 5 and len(train) == 15 and not set(dev) & set(train)
        assert sorted(dev + train) == sorted(items)
        held.setdefault(seed, []).append(dev)
    assert held[0][0] == held[0][1] and held[0][0] != held[1][0]
