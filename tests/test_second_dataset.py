"""bench/second_dataset.py: a tiny copy of the second compositional dataset is a valid folder dataset, its
unseen order is compositional at every K, and its files depend on the seed alone."""

import numpy as np
import pytest

from pipeline_runs import bench_script
from zsseg.datasets import demo as demo_dataset
from zsseg.datasets.folder import SPLITS, FolderDataset, prepare_folder

SIZES = {"train_images": 8, "val_images": 4, "dev_images": 4, "image_size": 64}


@pytest.fixture(scope="module")
def second():
    return bench_script("second_dataset")


@pytest.fixture(scope="module")
def written(second, tmp_path_factory):
    root = tmp_path_factory.mktemp("second") / "dataset"
    statistics = second.write_second_dataset(root, seed=0, progress=False, **SIZES)
    return root, statistics


def files(root):
    return {path.relative_to(root): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_the_folder_loader_and_prepare_accept_it(second, written, tmp_path):
    root, statistics = written
    dataset = FolderDataset(root)
    assert dataset.class_names == second.CLASS_NAMES and dataset.class_names[0] == "background"
    assert dataset.unseen_order == second.UNSEEN_ORDER and len(dataset.unseen_order) == 10
    for k in range(1, 11):
        assert len(dataset.class_split(k).unseen) == k
    counts = {"train": 8, "val": 4, "dev": 4}
    for split in SPLITS:
        ids = dataset.ids(split)
        assert len(ids) == counts[split] == len(statistics[split]["present"])
        pixels = np.zeros(len(second.CLASS_NAMES), dtype=np.int64)
        for image_id in ids:
            image, label = dataset.load(image_id)
            assert image.shape == (64, 64, 3) and image.dtype == np.uint8
            assert label.shape == (64, 64) and label.max() < len(dataset.class_names)
            pixels += np.bincount(label.ravel(), minlength=len(pixels))
        # The summary's statistics are the labels' own.
        assert pixels.tolist() == statistics[split]["pixels"].tolist()
    notes = []
    prepare_folder(root, tmp_path / "prepared", 1, notes.append)
    assert notes == ["checked and linked 8 train, 4 val, 4 dev images"]


def test_every_unseen_colour_and_shape_stays_seen_at_every_k(second):
    names = second.CLASS_NAMES[1:]
    assert len(names) == len(set(names)) == len(second.COLOURS) * len(second.SHAPES)
    assert all(name in names for name in second.UNSEEN_ORDER) and len(set(second.UNSEEN_ORDER)) == 10
    # Other colours and shapes than the demo's.
    assert not set(second.COLOURS) & set(demo_dataset.COLOURS)
    assert not set(second.SHAPES) & set(demo_dataset.SHAPES)
    for k in range(2, 11):
        unseen = set(second.UNSEEN_ORDER[:k])
        seen = [name.split(" ") for name in names if name not in unseen]
        for name in unseen:
            colour, shape = name.split(" ")
            assert any(c == colour for c, _ in seen), (k, name)
            assert any(s == shape for _, s in seen), (k, name)
    second.check_compositional()


def test_the_seed_alone_decides_the_files(second, written, tmp_path):
    root, _ = written
    # Same seed, two worker processes: byte-identical files.
    second.write_second_dataset(tmp_path / "again", seed=0, workers=2, progress=False, **SIZES)
    assert files(tmp_path / "again") == files(root)
    second.write_second_dataset(tmp_path / "other", seed=1, progress=False, **SIZES)
    other, same = files(tmp_path / "other"), files(root)
    assert other.keys() == same.keys()
    assert all(other[path] != same[path] for path in same if path.suffix == ".jpg")
    assert any(other[path] != same[path] for path in same if path.suffix == ".png")
    assert all(other[path] == same[path] for path in same if path.suffix == ".txt")


def test_the_command_line_refuses_bad_input_and_prints_a_summary(second, written, tmp_path, capsys):
    root, _ = written
    with pytest.raises(SystemExit) as exit_info:
        second.main([str(root)])
    assert exit_info.value.code == 2
    assert "exists and is not empty" in capsys.readouterr().err
    for arguments in (["--image-size", "16"], ["--val-images", "0"], ["--min-objects", "3", "--max-objects", "2"]):
        with pytest.raises(SystemExit):
            second.main([str(tmp_path / "bad"), *arguments])
        assert "error: --" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    output = tmp_path / "cli"
    second.main([str(output), "--train-images", "4", "--val-images", "2", "--dev-images", "0",
                 "--image-size", "32", "--workers", "1"])
    printed = capsys.readouterr().out
    assert "4 train, 2 val, 0 dev images" in printed and "K = 10:" in printed
    assert not (output / "dev.txt").exists() and len(FolderDataset(output).ids("train")) == 4
