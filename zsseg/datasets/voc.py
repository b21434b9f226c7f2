"""PASCAL VOC 2012 + SBD (``dataset.name: voc``), ZS3Net's protocol, from the official archives as they come::

    ROOT/VOC2012/JPEGImages/ID.jpg
    ROOT/VOC2012/SegmentationClass/ID.png          palette PNG, indices 0..20, 255 = border
    ROOT/VOC2012/ImageSets/Segmentation/{train,val}.txt
    ROOT/benchmark_RELEASE/dataset/img/ID.jpg
    ROOT/benchmark_RELEASE/dataset/cls/ID.mat      GTcls.Segmentation
    ROOT/benchmark_RELEASE/dataset/{train,val}.txt  the SBD archive's own split files
    ROOT/benchmark_RELEASE/dataset/train_noval.txt  optional, a separate download: used when present

Train is VOC ``train`` ∪ SBD (``train_noval``, or else SBD ``train`` ∪ ``val``) without duplicates and
without any VOC ``val`` image, as ZS3Net's data code builds its 10,582 images; an image in both takes
its VOC label (it has the 255 borders). Val is VOC ``val``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from zsseg.datasets.conversion import find_image, mat_field, resolve_class_names, write_prepared
from zsseg.datasets.folder import DatasetAdapter, DatasetError, read_lines

CLASS_NAMES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")

# ZS3Net's nested unseen order, in its own words; K takes the first K.
UNSEEN_ORDER = ("cow", "motorbike", "airplane", "sofa", "cat", "tv", "train", "bottle", "chair", "potted plant")


def palette_label(path: Path, _: object = None) -> np.ndarray:
    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L"):
                raise DatasetError(f"{path}: expected a palette (or single-channel) PNG of class indices, "
                                   f"got mode {image.mode}")
            return np.array(image, dtype=np.uint8)
    except OSError as error:
        raise DatasetError(f"{path}: unreadable label ({error})") from error


def sbd_label(path: Path, _: object = None) -> np.ndarray:
    return mat_field(path, "GTcls", "Segmentation").astype(np.uint8)


def sbd_ids(sbd: Path) -> tuple[list[str], str]:
    """SBD's training ids and which files they came from: ``train_noval.txt`` when present, else the
    archive's own ``train.txt`` and ``val.txt`` (their VOC val images are removed later)."""
    noval = sbd / "train_noval.txt"
    if noval.is_file():
        return read_lines(noval), str(noval)
    train, val = sbd / "train.txt", sbd / "val.txt"
    for path in (train, val):
        if not path.is_file():
            raise DatasetError(f"{path}: file not found; expected the SBD archive's train.txt and val.txt "
                               f"(or train_noval.txt) in {sbd}")
    return list(dict.fromkeys([*read_lines(train), *read_lines(val)])), f"{train} + {val}"


def prepare_voc(root: Path, output: Path, workers: int, log: Callable[[str], None]) -> None:
    voc = root / "VOC2012"
    sbd = root / "benchmark_RELEASE" / "dataset"
    voc_train = read_lines(voc / "ImageSets" / "Segmentation" / "train.txt")
    val = read_lines(voc / "ImageSets" / "Segmentation" / "val.txt")
    sbd_train, sbd_source = sbd_ids(sbd)
    excluded = set(val)
    train = [image_id for image_id in dict.fromkeys([*voc_train, *sbd_train]) if image_id not in excluded]
    log(f"SBD ids from {sbd_source}: {len(sbd_train)}")
    log(f"VOC train {len(voc_train)} + SBD {len(sbd_train)} -> {len(train)} train images "
        f"(duplicates and VOC val images removed); val {len(val)}")
    image_directories = [voc / "JPEGImages", sbd / "img"]
    voc_train_ids = set(voc_train)
    images, label_jobs = {}, {}
    for image_id in [*train, *dict.fromkeys(val)]:
        images[image_id] = find_image(image_directories, image_id)
        if image_id in voc_train_ids or image_id in excluded:
            label_jobs[image_id] = (palette_label, voc / "SegmentationClass" / f"{image_id}.png", None)
        else:
            label_jobs[image_id] = (sbd_label, sbd / "cls" / f"{image_id}.mat", None)
        if not label_jobs[image_id][1].is_file():
            raise DatasetError(f"{label_jobs[image_id][1]}: label of id {image_id!r} not found")
    unseen = resolve_class_names(UNSEEN_ORDER, CLASS_NAMES, "VOC unseen order")
    write_prepared(output, CLASS_NAMES, unseen, {"train": train, "val": list(dict.fromkeys(val))}, images,
                   label_jobs, workers, log)


ADAPTER = DatasetAdapter("voc", prepare_voc, imagenet_overlap=True)
