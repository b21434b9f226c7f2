"""Adapters that convert PASCAL VOC 2012 + SBD and Pascal-Context into the folder format, once.

Decoding ``.mat`` labels is slow, so the `prepare` stage converts every label to a PNG a single time;
images are linked, not copied. Expected layouts (those of the official archives, as ZS3Net uses them):

VOC (``dataset.name: voc``)::

    ROOT/VOC2012/JPEGImages/ID.jpg
    ROOT/VOC2012/SegmentationClass/ID.png          palette PNG, indices 0..20, 255 = border
    ROOT/VOC2012/ImageSets/Segmentation/{train,val}.txt
    ROOT/benchmark_RELEASE/dataset/img/ID.jpg
    ROOT/benchmark_RELEASE/dataset/cls/ID.mat      GTcls.Segmentation
    ROOT/benchmark_RELEASE/dataset/train_noval.txt

Train is VOC ``train`` ∪ SBD ``train_noval`` without duplicates and without any VOC ``val`` image;
an image in both takes its VOC label (it has the 255 borders). Val is VOC ``val``.

Context (``dataset.name: context``)::

    ROOT/pascal/VOCdevkit/VOC2010/JPEGImages/ID.jpg   (or VOC2012, which includes them)
    ROOT/full_annotations/trainval/ID.mat              LabelMap over the 459 full classes
    ROOT/full_annotations/labels.txt                   "index: name" for the 459 classes
    ROOT/classes-59.txt                                "index: name" (or plain names), background first
    ROOT/train.txt, ROOT/val.txt

The 459 labels are mapped to the 59 classes by name, with ZS3Net's fixes (the 59-class list says
diningtable, bedcloth, clothes where the 459 list says table, bedclothes, cloth). Every other pixel
is background, as in ZS3Net.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from zsseg.datasets import IMAGE_SUFFIXES, DatasetError, FolderDataset, check_image, read_lines

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")

# ZS3Net's nested unseen orders, in its own words; K takes the first K.
VOC_UNSEEN_ORDER = ("cow", "motorbike", "airplane", "sofa", "cat", "tv", "train", "bottle", "chair", "potted plant")
CONTEXT_UNSEEN_ORDER = ("cow", "motorbike", "sofa", "cat", "boat", "fence", "bird", "tvmonitor", "keyboard",
                        "aeroplane")

# Everyday names for PASCAL's glued ones.
NAME_ALIASES = {"airplane": "aeroplane", "tv": "tvmonitor", "tv monitor": "tvmonitor", "potted plant": "pottedplant",
                "dining table": "diningtable", "motorcycle": "motorbike", "couch": "sofa"}

# ZS3Net's renames between the 59-class list and the 459-class list of Pascal-Context.
CONTEXT_NAME_FIXES = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}


def resolve_class_names(names: Sequence[str], class_names: Sequence[str], source: str) -> list[str]:
    """Map names such as "airplane" or "potted plant" onto a dataset's own class names."""
    normalised = {name.replace(" ", "").lower(): name for name in class_names}
    resolved = []
    for name in names:
        candidate = NAME_ALIASES.get(name.lower(), name)
        match = normalised.get(candidate.replace(" ", "").lower())
        if match is None:
            raise DatasetError(f"{source}: unseen class {name!r} is not one of the classes {list(class_names)}")
        resolved.append(match)
    return resolved


def _indexed_names(path: Path) -> list[str]:
    """Names from an "index: name" file (or a plain list), spaces removed as ZS3Net does."""
    names = []
    for line in read_lines(path):
        name = line.split(":", 1)[1] if ":" in line else line
        names.append(name.strip().replace(" ", ""))
    return names


def _palette_label(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L"):
                raise DatasetError(f"{path}: expected a palette (or single-channel) PNG of class indices, "
                                   f"got mode {image.mode}")
            return np.array(image, dtype=np.uint8)
    except OSError as error:
        raise DatasetError(f"{path}: unreadable label ({error})") from error


def _mat_field(path: Path, variable: str, field: str | None) -> np.ndarray:
    from scipy.io import loadmat

    try:
        content = loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as error:  # scipy raises several unrelated types for broken files
        raise DatasetError(f"{path}: unreadable .mat file ({error})") from error
    if variable not in content:
        raise DatasetError(f"{path}: no variable {variable!r} in the .mat file")
    value = content[variable]
    if field is not None:
        if not hasattr(value, field):
            raise DatasetError(f"{path}: {variable} has no field {field!r}")
        value = getattr(value, field)
    return np.asarray(value)


def sbd_label(path: Path) -> np.ndarray:
    return _mat_field(path, "GTcls", "Segmentation").astype(np.uint8)


def context_label(path: Path, full_to_task: np.ndarray) -> np.ndarray:
    label_map = _mat_field(path, "LabelMap", None).astype(np.int64)
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
        full_name = CONTEXT_NAME_FIXES.get(name, name)
        if full_name not in full_names:
            raise DatasetError(f"{source}: class {name!r} has no match in the 459 names of labels.txt")
        table[full_names.index(full_name) + 1] = task_index
    return table


def _find_image(directories: Sequence[Path], image_id: str) -> Path:
    for directory in directories:
        for suffix in IMAGE_SUFFIXES:
            candidate = directory / f"{image_id}{suffix}"
            if candidate.is_file():
                return candidate
    raise DatasetError(f"{directories[0] / image_id}.jpg: image of id {image_id!r} not found "
                       f"(looked in {', '.join(str(d) for d in directories)})")


def _link(source: Path, target: Path) -> None:
    """Images are linked into the prepared dataset: it is a view, and VOC's JPEGs take gigabytes."""
    os.symlink(source.resolve(), target)


def _convert_one(job: tuple) -> tuple[str, int, int]:
    kind, source, destination, extra = job
    if kind == "png":
        label = _palette_label(Path(source))
    elif kind == "sbd":
        label = sbd_label(Path(source))
    else:
        label = context_label(Path(source), extra)
    Image.fromarray(label, mode="L").save(destination)
    return destination, label.shape[0], label.shape[1]


def _write_prepared(output: Path, class_names: Sequence[str], unseen_order: Sequence[str],
                    splits: dict[str, list[str]], images: dict[str, Path], label_jobs: dict[str, tuple],
                    workers: int, log: Callable[[str], None]) -> None:
    (output / "images").mkdir(parents=True)
    (output / "labels").mkdir()
    (output / "classes.txt").write_text("\n".join(class_names) + "\n")
    (output / "unseen.txt").write_text("\n".join(unseen_order) + "\n")
    for split, ids in splits.items():
        if not ids:
            raise DatasetError(f"the {split} split is empty after removing duplicates and val images")
        (output / f"{split}.txt").write_text("\n".join(ids) + "\n")
    for image_id, source in images.items():
        _link(source, output / "images" / f"{image_id}{source.suffix.lower()}")
    jobs = [(kind, str(source), str(output / "labels" / f"{image_id}.png"), extra)
            for image_id, (kind, source, extra) in label_jobs.items()]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for destination, height, width in tqdm(pool.map(_convert_one, jobs, chunksize=16), total=len(jobs),
                                               desc="convert labels", unit="label"):
            image_id = Path(destination).stem
            size, _ = check_image(images[image_id])
            if size != (width, height):
                raise DatasetError(f"{label_jobs[image_id][1]}: label size {width}x{height} does not match its "
                                   f"image {images[image_id]} ({size[0]}x{size[1]})")
    log(f"prepared {', '.join(f'{len(ids)} {split}' for split, ids in splits.items())} images")


def prepare_voc(root: Path, output: Path, workers: int, log: Callable[[str], None]) -> None:
    voc = root / "VOC2012"
    sbd = root / "benchmark_RELEASE" / "dataset"
    voc_train = read_lines(voc / "ImageSets" / "Segmentation" / "train.txt")
    val = read_lines(voc / "ImageSets" / "Segmentation" / "val.txt")
    sbd_train = read_lines(sbd / "train_noval.txt")
    excluded = set(val)
    train = [image_id for image_id in dict.fromkeys([*voc_train, *sbd_train]) if image_id not in excluded]
    log(f"VOC train {len(voc_train)} + SBD train_noval {len(sbd_train)} -> {len(train)} train images "
        f"(duplicates and val images removed); val {len(val)}")
    image_directories = [voc / "JPEGImages", sbd / "img"]
    voc_train_ids = set(voc_train)
    images, label_jobs = {}, {}
    for image_id in [*train, *dict.fromkeys(val)]:
        images[image_id] = _find_image(image_directories, image_id)
        if image_id in voc_train_ids or image_id in excluded:
            label_jobs[image_id] = ("png", voc / "SegmentationClass" / f"{image_id}.png", None)
        else:
            label_jobs[image_id] = ("sbd", sbd / "cls" / f"{image_id}.mat", None)
        if not label_jobs[image_id][1].is_file():
            raise DatasetError(f"{label_jobs[image_id][1]}: label of id {image_id!r} not found")
    unseen = resolve_class_names(VOC_UNSEEN_ORDER, VOC_CLASSES, "VOC unseen order")
    _write_prepared(output, VOC_CLASSES, unseen, {"train": train, "val": list(dict.fromkeys(val))}, images,
                    label_jobs, workers, log)


def prepare_context(root: Path, output: Path, workers: int, log: Callable[[str], None]) -> None:
    annotations = root / "full_annotations"
    full_names = _indexed_names(annotations / "labels.txt")
    class_names = _indexed_names(root / "classes-59.txt")
    if len(class_names) == 59 and class_names[0] != "background":
        class_names.insert(0, "background")
    if len(class_names) != 60:
        raise DatasetError(f"{root / 'classes-59.txt'}: expected 60 lines (background and 59 classes), "
                           f"found {len(class_names)}")
    full_to_task = context_index_map(full_names, class_names, root / "classes-59.txt")
    image_directories = [root / "pascal" / "VOCdevkit" / version / "JPEGImages" for version in ("VOC2010", "VOC2012")]
    splits = {split: list(dict.fromkeys(read_lines(root / f"{split}.txt"))) for split in ("train", "val")}
    overlap = set(splits["train"]) & set(splits["val"])
    if overlap:
        raise DatasetError(f"{root / 'train.txt'}: id {sorted(overlap)[0]!r} is also in val.txt")
    images, label_jobs = {}, {}
    for image_id in [*splits["train"], *splits["val"]]:
        images[image_id] = _find_image(image_directories, image_id)
        source = annotations / "trainval" / f"{image_id}.mat"
        if not source.is_file():
            raise DatasetError(f"{source}: label of id {image_id!r} not found")
        label_jobs[image_id] = ("context", source, full_to_task)
    unseen = resolve_class_names(CONTEXT_UNSEEN_ORDER, class_names, "Pascal-Context unseen order")
    _write_prepared(output, class_names, unseen, splits, images, label_jobs, workers, log)


def prepare_folder(root: Path, output: Path, workers: int, log: Callable[[str], None]) -> None:
    """Validate a folder dataset label by label, then link it as the prepared view."""
    dataset = FolderDataset(root)
    splits = {split: dataset.ids(split) for split in ("train", "val")}
    converted: dict[str, list[Path]] = {}
    for split, ids in splits.items():
        for image_id in tqdm(ids, desc=f"check {split}", unit="img", leave=False):
            (width, height), mode = check_image(dataset.image_path(image_id))
            if mode != "RGB":
                converted.setdefault(mode, []).append(dataset.image_path(image_id))
            dataset.load_label(image_id, expected_size=(height, width))
    for mode, paths in converted.items():
        log(f"note: {len(paths)} image(s) in mode {mode} (e.g. {paths[0]}) are converted to RGB when loaded"
            + (", dropping the alpha channel" if "A" in mode else ""))
    (output / "images").mkdir(parents=True)
    (output / "labels").mkdir()
    shutil.copyfile(root / "classes.txt", output / "classes.txt")
    if dataset.unseen_order:
        shutil.copyfile(root / "unseen.txt", output / "unseen.txt")
    for split, ids in splits.items():
        (output / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for image_id in ids:
            image_path = dataset.image_path(image_id)
            _link(image_path, output / "images" / image_path.name)
            _link(dataset.label_path(image_id), output / "labels" / f"{image_id}.png")
    log(f"checked and linked {len(splits['train'])} train and {len(splits['val'])} val images")


PREPARERS = {"demo": prepare_folder, "folder": prepare_folder, "voc": prepare_voc, "context": prepare_context}


def prepare_dataset(name: str, root: str | Path, output: Path, workers: int, log: Callable[[str], None]) -> None:
    """Write the folder-format view of dataset ``name`` at ``root`` into ``output`` (a fresh directory)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset.root = {str(root)!r}: directory not found")
    PREPARERS[name](root, output, workers, log)
