"""Pascal-Context (``dataset.name: context``), 59 classes + background, ZS3Net's protocol::

    ROOT/pascal/VOCdevkit/VOC2010/JPEGImages/ID.jpg   (or VOC2012, which includes them)
    ROOT/full_annotations/trainval/ID.mat              LabelMap over the 459 full classes
    ROOT/full_annotations/labels.txt                   "index: name" for the 459 classes
    ROOT/classes-59.txt                                "index: name" (or plain names), background first
    ROOT/train.txt, ROOT/val.txt

The 459 labels are mapped to the 59 classes by name, with ZS3Net's fixes (the 59-class list says
diningtable, bedcloth, clothes where the 459 list says table, bedclothes, cloth). Every other pixel
is background, as in ZS3Net.

``dataset.name: context33`` is CaGNet's Pascal-Context split from the same files (classes-59.txt is not
read): 33 of the 59 classes, in the order and with the indices of CaGNet's ``dataset/context/labels.txt``
(github.com/bcmi/CaGNet-Zero-Shot-Semantic-Segmentation), 4 of them unseen (its ``split/novel_cls.npy``:
cow, motorbike, sofa, cat; K = 4 of unseen.txt). Every other pixel, the other 26 classes' included, is class
0, which CaGNet's ``labels_refined.txt`` calls "unlabel" and ignores: run it with ``dataset.background:
ignore`` (the ``context-cagnet`` preset), as CaGNet does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from zsseg.datasets.conversion import find_image, mat_field, resolve_class_names, write_prepared
from zsseg.datasets.folder import DatasetAdapter, DatasetError, read_lines

# ZS3Net's nested unseen order; K takes the first K.
UNSEEN_ORDER = ("cow", "motorbike", "sofa", "cat", "boat", "fence", "bird", "tvmonitor", "keyboard", "aeroplane")

# ZS3Net's renames between the 59-class list and the 459-class list.
NAME_FIXES = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}

# CaGNet's 33 classes (dataset/context/labels.txt, indices 1..33, spelt as the 59-class list spells them), and
# its 4 unseen ones (split/novel_cls.npy: 10, 14, 18, 8), in that order: ZS3Net's first 4 too.
CAGNET_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
                  "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor", "sky",
                  "grass", "ground", "road", "building", "tree", "water", "mountain", "wall", "floor", "track",
                  "keyboard", "ceiling")
CAGNET_UNSEEN = ("cow", "motorbike", "sofa", "cat")


def indexed_names(path: Path) -> list[str]:
    """Names from an "index: name" file (or a plain list), spaces removed as ZS3Net does."""
    names = []
    for line in read_lines(path):
        name = line.split(":", 1)[1] if ":" in line else line
        names.append(name.strip().replace(" ", ""))
    return names


def context_label(path: Path, full_to_task: np.ndarray) -> np.ndarray:
    label_map = mat_field(path, "LabelMap", None).astype(np.int64)
    if label_map.min() < 0 or label_map.max() >= len(full_to_task):
        raise DatasetError(f"{path}: LabelMap value {int(label_map.max())} is outside the "
                           f"{len(full_to_task) - 1} classes of labels.txt")
    return full_to_task[label_map]


def context_index_map(full_names: Sequence[str], task_names: Sequence[str], source: Path) -> np.ndarray:
    """A lookup from the 459 full labels (1-based, 0 = unlabelled) to the task's indices (0 = background)."""
    table = np.zeros(len(full_names) + 1, dtype=np.uint8)
    for task_index, name in enumerate(task_names):
        if task_index == 0:
            continue
        full_name = NAME_FIXES.get(name, name)
        if full_name not in full_names:
            raise DatasetError(f"{source}: class {name!r} has no match in the 459 names of labels.txt")
        table[full_names.index(full_name) + 1] = task_index
    return table


def prepare_context(root: Path, output: Path, workers: int, log: Callable[[str], None]) -> None:
    class_names = indexed_names(root / "classes-59.txt")
    if len(class_names) == 59 and class_names[0] != "background":
        class_names.insert(0, "background")
    if len(class_names) != 60:
        raise DatasetError(f"{root / 'classes-59.txt'}: expected 60 lines (background and 59 classes), "
                           f"found {len(class_names)}")
    _prepare(root, output, workers, log, class_names, root / "classes-59.txt", UNSEEN_ORDER)


def prepare_context33(root: Path, output: Path, workers: int, log: Callable[[str], None]) -> None:
    """CaGNet's 33 classes (see the module docstring); every other pixel is class 0."""
    _prepare(root, output, workers, log, ["background", *CAGNET_CLASSES], root / "full_annotations" / "labels.txt",
             CAGNET_UNSEEN)
    log(f"CaGNet's Pascal-Context split: {len(CAGNET_CLASSES)} classes, every other pixel class 0 (run it with "
        f"dataset.background: ignore)")


def _prepare(root: Path, output: Path, workers: int, log: Callable[[str], None], class_names: list[str],
             names_source: Path, unseen_order: Sequence[str]) -> None:
    annotations = root / "full_annotations"
    full_names = indexed_names(annotations / "labels.txt")
    full_to_task = context_index_map(full_names, class_names, names_source)
    image_directories = [root / "pascal" / "VOCdevkit" / version / "JPEGImages" for version in ("VOC2010", "VOC2012")]
    splits = {split: list(dict.fromkeys(read_lines(root / f"{split}.txt"))) for split in ("train", "val")}
    overlap = set(splits["train"]) & set(splits["val"])
    if overlap:
        raise DatasetError(f"{root / 'train.txt'}: id {sorted(overlap)[0]!r} is also in val.txt")
    images, label_jobs = {}, {}
    for image_id in [*splits["train"], *splits["val"]]:
        images[image_id] = find_image(image_directories, image_id)
        source = annotations / "trainval" / f"{image_id}.mat"
        if not source.is_file():
            raise DatasetError(f"{source}: label of id {image_id!r} not found")
        label_jobs[image_id] = (context_label, source, full_to_task)
    unseen = resolve_class_names(unseen_order, class_names, "Pascal-Context unseen order")
    write_prepared(output, class_names, unseen, splits, images, label_jobs, workers, log)


ADAPTER = DatasetAdapter("context", prepare_context, imagenet_overlap=True)
CAGNET_ADAPTER = DatasetAdapter("context33", prepare_context33, imagenet_overlap=True)
