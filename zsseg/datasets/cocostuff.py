"""COCO-Stuff 164k (``dataset.name: cocostuff``), in the layout its README's setup commands make
(https://github.com/nightrome/cocostuff, "Setup")::

    ROOT/images/train2017/ID.jpg          train2017.zip unpacked into images/ (118,287 images)
    ROOT/images/val2017/ID.jpg            val2017.zip unpacked into images/ (5,000 images)
    ROOT/annotations/train2017/ID.png     stuffthingmaps_trainval2017.zip unpacked into annotations/
    ROOT/annotations/val2017/ID.png

The annotations are single-channel PNGs of indices: "thing+stuff labels cover indices 0-181 and 255
indicates the 'unlabeled' or void class" (the README). Index i is id i + 1 of the README's labels.txt
(0 = person, 181 = wood). 11 of COCO's 91 thing ids "do not have any segmentation annotations" (the
README, and labels.md: "Removed from COCO."), so 171 classes are used: they become 0..170, in COCO-Stuff's
order, and 255 stays ignored. An unused or out-of-range index in an annotation is refused, naming the file.

COCO-Stuff has no background class: index 0 of classes.txt is person, a class like the others (always
seen, as the folder format makes index 0), and ``dataset.background: ignore`` is refused (SPNet and CaGNet
ignore only the 255 pixels here). Train is train2017, val is val2017; the `prepare` stage holds
out ``dataset.dev_fraction`` of train as dev. unseen.txt holds the 15 unseen classes of SPNet's split
(its ``novel_cls.npy``, in that order), which CaGNet follows: K = 15 is the published split.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from zsseg.datasets.conversion import write_prepared
from zsseg.datasets.folder import IMAGE_SUFFIXES, DatasetAdapter, DatasetError
from zsseg.datasets.voc import palette_label
from zsseg.labels import IGNORE_INDEX

# labels.txt of github.com/nightrome/cocostuff (commit 876a7db), ids 1..182 as PNG indices 0..181.
ANNOTATION_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep",
    "cow", "elephant", "bear", "zebra", "giraffe", "hat", "backpack", "umbrella", "shoe", "eye glasses",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
    "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "plate", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
    "donut", "cake", "chair", "couch", "potted plant", "bed", "mirror", "dining table", "window", "desk",
    "toilet", "door", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven",
    "toaster", "sink", "refrigerator", "blender", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush", "hair brush", "banner", "blanket", "branch", "bridge", "building-other", "bush",
    "cabinet", "cage", "cardboard", "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds",
    "counter", "cupboard", "curtain", "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble",
    "floor-other", "floor-stone", "floor-tile", "floor-wood", "flower", "fog", "food-other", "fruit",
    "furniture-other", "grass", "gravel", "ground-other", "hill", "house", "leaves", "light", "mat", "metal",
    "mirror-stuff", "moss", "mountain", "mud", "napkin", "net", "paper", "pavement", "pillow", "plant-other",
    "plastic", "platform", "playingfield", "railing", "railroad", "river", "road", "rock", "roof", "rug",
    "salad", "sand", "sea", "shelf", "sky-other", "skyscraper", "snow", "solid-other", "stairs", "stone",
    "straw", "structural-other", "table", "tent", "textile-other", "towel", "tree", "vegetable", "wall-brick",
    "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile", "wall-wood", "water-other",
    "waterdrops", "window-blind", "window-other", "wood")

# The 11 thing ids without segmentation annotations (labels.md: "Removed from COCO."), as PNG indices:
# street sign, hat, shoe, eye glasses, plate, mirror, window, desk, door, blender, hair brush.
UNUSED_INDICES = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)

CLASS_NAMES = tuple(name for index, name in enumerate(ANNOTATION_NAMES) if index not in UNUSED_INDICES)

# SPNet's unseen classes (data/datasets/cocostuff/split/novel_cls.npy, PNG indices 20 24 32 33 40 56 86 99
# 105 123 144 147 148 168 171, in that order), which CaGNet's split file repeats.
UNSEEN = ("cow", "giraffe", "suitcase", "frisbee", "skateboard", "carrot", "scissors", "cardboard", "clouds",
          "grass", "playingfield", "river", "road", "tree", "wall-concrete")

SPLITS = {"train": "train2017", "val": "val2017"}
NO_CLASS = 256   # in the lookup: an index that is no class


def index_map() -> np.ndarray:
    """A 256-entry lookup from annotation indices to class indices: 0..170 for the 171 used ids, 255 for
    255, and NO_CLASS for an unused id or a value above 181."""
    table = np.full(256, NO_CLASS, dtype=np.uint16)
    used = [index for index in range(len(ANNOTATION_NAMES)) if index not in UNUSED_INDICES]
    table[used] = np.arange(len(used))
    table[IGNORE_INDEX] = IGNORE_INDEX
    return table


INDEX_MAP = index_map()


def cocostuff_label(path: Path, _: object = None) -> np.ndarray:
    annotation = palette_label(path)
    label = INDEX_MAP[annotation]
    invalid = label == NO_CLASS
    if invalid.any():
        value = int(annotation[invalid][0])
        what = (f"COCO id {value + 1} ({ANNOTATION_NAMES[value]!r}), one of the 11 without segmentation "
                f"annotations" if value < len(ANNOTATION_NAMES) else "above 181")
        raise DatasetError(f"{path}: label value {value} is {what}; expected 0..181 without the unused ids, "
                           f"or 255 (COCO-Stuff's stuffthingmaps_trainval2017)")
    return label.astype(np.uint8)


def split_images(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        raise DatasetError(f"{directory}: directory not found; expected COCO's images unpacked into images/ "
                           f"(images/train2017, images/val2017)")
    images = {path.stem: path for path in sorted(directory.iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES}
    if not images:
        raise DatasetError(f"{directory}: no images")
    return images


def prepare_cocostuff(root: Path, output: Path, workers: int, log: Callable[[str], None]) -> None:
    splits, images, label_jobs = {}, {}, {}
    for split, folder in SPLITS.items():
        found = split_images(root / "images" / folder)
        overlap = set(found) & set(images)
        if overlap:
            raise DatasetError(f"{found[sorted(overlap)[0]]}: id {sorted(overlap)[0]!r} is in both train2017 and "
                               f"val2017")
        for image_id, image in found.items():
            source = root / "annotations" / folder / f"{image_id}.png"
            if not source.is_file():
                raise DatasetError(f"{source}: label of id {image_id!r} not found; expected "
                                   f"stuffthingmaps_trainval2017.zip unpacked into annotations/")
            images[image_id] = image
            label_jobs[image_id] = (cocostuff_label, source, None)
        splits[split] = list(found)
    log(f"COCO-Stuff: {len(splits['train'])} train2017 and {len(splits['val'])} val2017 images; "
        f"{len(CLASS_NAMES)} classes (PNG indices 0..181 without the unused {', '.join(map(str, UNUSED_INDICES))}), "
        f"255 ignored")
    write_prepared(output, CLASS_NAMES, UNSEEN, splits, images, label_jobs, workers, log)


# Its published numbers (SPNet, CaGNet) start from ImageNet-1k weights: no warning about them.
ADAPTER = DatasetAdapter("cocostuff", prepare_cocostuff, has_background=False)
