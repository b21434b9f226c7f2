"""bench/scale.py's dataset shapes: the stand-in's palette tells COCO-Stuff's 171 classes apart under the image
noise, the cocostuff shape is the adapter's and the preset's (classes, SPNet's unseen order, stuff as bands), and
VOC's and Context's labels are drawn as before."""

import numpy as np
import pytest
import torch
import yaml

from pipeline_runs import bench_script
from zsseg.datasets import cocostuff
from zsseg.datasets.folder import FolderDataset
from zsseg.labels import IGNORE_INDEX
from zsseg.presets import PRESETS


@pytest.fixture(scope="module")
def scale():
    return bench_script("scale")


def test_the_palette_gives_distinct_colours_that_the_stand_in_recovers_for_171_classes(scale):
    count = len(cocostuff.CLASS_NAMES)
    assert count == 171 <= scale.MAX_CLASSES
    colours = scale.palette(count)
    assert len({tuple(colour) for colour in colours}) == count
    distances = np.abs(colours[:, None].astype(int) - colours[None].astype(int)).max(axis=-1)
    np.fill_diagonal(distances, 255)
    assert distances.min() > 2 * scale.IMAGE_NOISE   # the noise never brings one colour nearer another
    with pytest.raises(ValueError, match="more than 216 colours"):
        scale.palette(scale.MAX_CLASSES + 1)
    # One 4 x 4 block per class, painted as write_dataset paints it: random noise, then the worst case.
    head = scale.StandInHead(feature_dim=256)
    head.set_classes(colours, 100.0 * torch.eye(count, 256))
    rng = np.random.default_rng(0)
    painted = np.repeat(np.repeat(colours[None], 4, axis=0), 4, axis=1).astype(int)   # 4 x (4 * count) x 3
    for noise in (rng.integers(-scale.IMAGE_NOISE, scale.IMAGE_NOISE + 1, size=painted.shape),
                  np.full(painted.shape, scale.IMAGE_NOISE), np.full(painted.shape, -scale.IMAGE_NOISE)):
        image = torch.from_numpy(np.clip(painted + noise, 0, 255)).float().permute(2, 0, 1)[None]
        with torch.no_grad():
            features = head(*scale.StandInEncoder()(image))
        assert features.shape == (1, 256, 1, count)
        assert features[0, :, 0].argmax(dim=0).tolist() == list(range(count))


def test_the_cocostuff_shape_is_the_adapters_and_the_presets(scale):
    shape = scale.SHAPES["cocostuff"]
    preset = yaml.safe_load((PRESETS / "cocostuff.yaml").read_text())
    assert shape.preset == "cocostuff"
    assert shape.class_names == cocostuff.CLASS_NAMES
    assert list(shape.unseen_order) == list(cocostuff.UNSEEN) == preset["dataset"]["unseen"]
    assert (shape.train_images, shape.val_images) == (118287, 5000)
    assert len(shape.stuff) == 91 and set(shape.stuff) <= set(shape.class_names)
    assert shape.stuff[0] == "banner" and shape.stuff[-1] == "wood"
    assert not set(shape.stuff) & set(shape.class_names[:80])   # the 80 things are no band
    assert set(shape.image_shares) == set(shape.class_names)
    assert all(0 < share < 1 for share in shape.image_shares.values())
    assert sum(shape.image_sizes.values()) == pytest.approx(1.0)
    assert max(max(size) for size in shape.image_sizes) == 640
    assert scale.preset_grid(shape) == ([15], 3)
    assert 0.5 < scale.unlabelled_share(shape, 15) < 0.8


def test_voc_and_context_keep_their_image_sizes_and_grid(scale):
    for name in ("voc", "context"):
        shape = scale.SHAPES[name]
        assert shape.image_sizes == scale.VOC_IMAGE_SIZES
        assert scale.preset_grid(shape) == ([2, 4, 6, 8, 10], 15)
        assert len(shape.class_names) <= scale.MAX_CLASSES


def test_cocostuff_labels_hold_stuff_bands_and_objects_in_their_shares(scale):
    shape = scale.SHAPES["cocostuff"]
    names = shape.class_names
    unseen = {names.index(name) for name in shape.unseen_order}
    stuff = {names.index(name) for name in shape.stuff}
    labels = [scale.synthetic_label(shape, np.random.default_rng([0, 0, i]), None, unseen) for i in range(150)]
    for label in labels:
        assert label.shape in shape.image_sizes
        values = set(np.unique(label).tolist())
        assert values <= set(range(len(names))) | {IGNORE_INDEX}
        assert values & stuff
    unlabelled = np.mean([np.isin(label, sorted(unseen)).any() for label in labels])
    assert unlabelled == pytest.approx(scale.unlabelled_share(shape, 15), abs=0.15)
    for forced in (False, True):
        held = [np.isin(scale.synthetic_label(shape, np.random.default_rng([1, 0, i]), forced, unseen),
                        sorted(unseen)).any() for i in range(20)]
        # Forced: one unseen object is drawn, which a later rectangle may yet cover whole (as on VOC).
        assert sum(held) >= 18 if forced else not any(held)


def test_a_tiny_cocostuff_dataset_is_a_valid_folder_dataset(scale, tmp_path):
    shape = scale.SHAPES["cocostuff"]
    counts = scale.write_dataset(tmp_path / "dataset", shape, 1 / 8192, 15, 0.017, 0, None)
    assert counts == {"train": 13, "val": 1, "dev": 1}
    dataset = FolderDataset(tmp_path / "dataset")
    assert dataset.class_names == cocostuff.CLASS_NAMES
    assert dataset.unseen_order == cocostuff.UNSEEN
    assert [dataset.class_names[index] for index in dataset.class_split(15).unseen] == list(cocostuff.UNSEEN)
    assert len(dataset.ids("train")) == 13
