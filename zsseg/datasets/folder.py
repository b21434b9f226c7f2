"""The folder format, which every stage after `prepare` reads, and the adapter for datasets already in it.

Each dataset is data plus a small adapter (:class:`DatasetAdapter`, one per module of this package:
``demo``, ``folder``, ``voc``, ``context``) that turns it into this format once. The format is::

    ROOT/classes.txt     one class name per line; line 1 is index 0 = background (a dataset without one,
                         such as COCO-Stuff, has a class of its own there: see has_background)
    ROOT/train.txt       image ids, one per line (also val.txt, and the optional dev.txt)
    ROOT/images/ID.jpg   RGB (.jpg or .png); grayscale, palette and RGBA images are converted to RGB
                         (alpha dropped) when loaded, with a note from the prepare stage
    ROOT/labels/ID.png   single channel, value = class index, 255 = ignore
    ROOT/unseen.txt      optional: the nested unseen order

Every problem is reported as a :class:`DatasetError` that names the offending file or value.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from zsseg.errors import InputError
from zsseg.labels import BACKGROUND, IGNORE_INDEX, IGNORED_CLASSES, ignored_classes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# train: training (its unlabelled images carry no label); val: the final report; dev: every choice tuned.
SPLITS = ("train", "val", "dev")
SOURCE_FILE = "source.json"

# prepare(root, output, workers, log): write the folder-format view of the dataset at root into output.
Preparer = Callable[[Path, Path, int, Callable[[str], None]], None]


class DatasetError(InputError):
    """The dataset on disk does not match its format; the message names the file or value."""


@dataclass(frozen=True)
class DatasetAdapter:
    """How one dataset becomes the folder-format view that every later stage reads."""

    name: str           # dataset.name in params.yaml
    prepare: Preparer
    # Its classes are among ImageNet-1k's, so a backbone pretrained on all of ImageNet has seen its
    # unseen classes; the backbone stage warns about such weights.
    imagenet_overlap: bool = False
    # Its class 0 is background. False for a dataset whose index 0 is a class of its own (COCO-Stuff's person):
    # dataset.background: ignore is refused before the prepare stage converts it (the folder adapter's own
    # classes.txt is checked by FolderDataset, see has_background).
    has_background: bool = True


@dataclass(frozen=True)
class ClassSplit:
    """Class names with the indices that are unseen during training (background is never unseen), and those that
    ``dataset.background: ignore`` takes out of the task (background), which are neither seen nor unseen."""

    names: tuple[str, ...]
    unseen: tuple[int, ...]
    ignored: tuple[int, ...] = ()

    @property
    def seen(self) -> tuple[int, ...]:
        return tuple(index for index in range(len(self.names)) if index not in self.unseen + self.ignored)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def seen_label_map(self) -> np.ndarray:
        """A 256-entry lookup from dataset labels to seen-classifier indices (unseen and 255 -> 255)."""
        table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        for position, index in enumerate(self.seen):
            table[index] = position
        return table

    def is_unlabelled(self, label: np.ndarray) -> bool:
        """The one bit per training image that the ground truth may tell a training stage about unseen
        classes: whether the image holds any unseen pixel. Such an image is *unlabelled*: no label of
        it, seen or unseen, reaches any training stage, and neither does which unseen class or where."""
        return bool(np.isin(label, self.unseen).any())

    def training_label(self, label: np.ndarray) -> tuple[np.ndarray, bool]:
        """What a training stage may see of a training image's label: the label of a labelled image,
        all 255 for an unlabelled one; and the bit."""
        unlabelled = self.is_unlabelled(label)
        return (np.full_like(label, IGNORE_INDEX) if unlabelled else label), unlabelled


def read_lines(path: Path) -> list[str]:
    """Non-empty stripped lines of a text file, or a DatasetError naming the missing file."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def read_class_names(path: Path) -> tuple[str, ...]:
    """classes.txt: one name per line. A label PNG refers to a class by its line, and the unseen
    list and embeddings by its name, so names must be exact and unique regardless of case."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    first_line: dict[str, tuple[str, int]] = {}
    for line, name in enumerate(path.read_text().splitlines(), start=1):
        if not name.strip():
            continue
        if name != name.strip():
            raise DatasetError(f"{path}: line {line}: class name {name!r} has surrounding whitespace; "
                               f"write it as {name.strip()!r}")
        if name.lower() in first_line:
            other, other_line = first_line[name.lower()]
            if other == name:
                raise DatasetError(f"{path}: duplicate class name {name!r} on lines {other_line} and {line}")
            raise DatasetError(f"{path}: class name {name!r} on line {line} clashes with {other!r} on line "
                               f"{other_line}; names must be unique regardless of case")
        first_line[name.lower()] = (name, line)
    names = tuple(name for name, _ in first_line.values())
    if len(names) < 2:
        raise DatasetError(f"{path}: expected background and at least one class")
    return names


def check_image(path: Path) -> tuple[tuple[int, int], str]:
    """Decode the whole image (a truncated file fails here, not in training): its (width, height) and mode."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.size, image.mode
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"{path}: unreadable or truncated image ({error})") from error


def read_rgb_image(path: Path) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 RGB array (grayscale, palette and RGBA converted)."""
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"{path}: unreadable image ({error})") from error


def has_background(class_names: tuple[str, ...]) -> bool:
    """Whether class 0 is a background class: its name is "background" (any case; "__background__" too). The
    folder format makes index 0 background, but a dataset without one (COCO-Stuff: index 0 is person) has a
    class of its own there, which ``dataset.background: ignore`` must not take away."""
    return class_names[BACKGROUND].strip("_").lower() == "background"


class FolderDataset:
    """A segmentation dataset in the folder format (see the module docstring).

    ``background`` is ``dataset.background``: with ``ignore``, every label it loads has its background pixels
    set to 255, so no training stage and no evaluation sees them (the unlabelled bit, which looks at unseen
    pixels alone, is unchanged), and its class splits leave background out of the seen classes."""

    def __init__(self, root: str | Path, background: str = "include") -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: dataset directory not found")
        self.class_names = read_class_names(self.root / "classes.txt")
        if background not in IGNORED_CLASSES:
            raise ValueError(f"background = {background!r}: expected one of {', '.join(IGNORED_CLASSES)}")
        if background == "ignore" and not has_background(self.class_names):
            raise DatasetError(f"dataset.background = 'ignore': {self.root / 'classes.txt'} has no background class "
                               f"to ignore (class 0 is {self.class_names[0]!r}, not 'background'); every pixel of "
                               f"this dataset is a class of its own or unlabelled (255). Set dataset.background: "
                               f"include")
        self.background = background
        self.ignored = ignored_classes(background)
        source = self.root / SOURCE_FILE
        # Where the prepare stage took the dataset from: {"dataset", "root", "imagenet_overlap"}.
        self.source: dict = json.loads(source.read_text()) if source.is_file() else {}
        unseen_file = self.root / "unseen.txt"
        self.unseen_order = tuple(read_lines(unseen_file)) if unseen_file.is_file() else ()
        for name in self.unseen_order:
            if name not in self.class_names:
                raise DatasetError(f"{unseen_file}: unseen class {name!r} is not in classes.txt")

    def class_split(self, unseen: int | list[str]) -> ClassSplit:
        """Resolve ``dataset.unseen``: K (the first K of the unseen order) or explicit class names."""
        if isinstance(unseen, int):
            if unseen < 1 or unseen > len(self.unseen_order):
                raise DatasetError(f"dataset.unseen = {unseen}: K must be between 1 and the "
                                   f"{len(self.unseen_order)} classes of {self.root / 'unseen.txt'}")
            names = list(self.unseen_order[:unseen])
        else:
            names = list(unseen)
        indices = []
        for name in names:
            if name not in self.class_names:
                raise DatasetError(f"dataset.unseen: {name!r} is not a class of {self.root / 'classes.txt'}")
            if self.class_names.index(name) == 0:
                raise DatasetError(f"dataset.unseen: {name!r} is the background class, which is always seen")
            indices.append(self.class_names.index(name))
        if len(set(indices)) != len(indices):
            raise DatasetError(f"dataset.unseen: duplicate class names in {names}")
        return ClassSplit(self.class_names, tuple(indices), self.ignored)

    def check_grid_split(self, unseen: int | list[str], k_values: list[int]) -> None:
        """The K grid runs each cell with ``dataset.unseen`` = K, the first K of unseen.txt. An explicit list of
        unseen classes (a published split: SPNet's, CaGNet's) is refused unless the grid runs exactly it:
        ``table.k_values`` = [its length], and the first that many of unseen.txt are its classes."""
        if isinstance(unseen, int):
            return
        k = len(unseen)
        if k_values != [k] or set(self.unseen_order[:k]) != set(unseen):
            raise DatasetError(f"dataset.unseen = {unseen}: the K grid (table.k_values = {k_values}) runs the first "
                               f"K classes of {self.root / 'unseen.txt'} ({', '.join(self.unseen_order)}) in each "
                               f"cell, not this list; run this split as the single run (`dvc repro`, "
                               f"`snakemake all`), or set dataset.unseen to a K")

    def has_split(self, split: str) -> bool:
        return (self.root / f"{split}.txt").is_file()

    def ids(self, split: str) -> list[str]:
        split_file = self.root / f"{split}.txt"
        ids = read_lines(split_file)
        if not ids:
            raise DatasetError(f"{split_file}: the {split} split is empty")
        duplicates = {image_id for image_id in ids if ids.count(image_id) > 1} if len(set(ids)) != len(ids) else set()
        if duplicates:
            raise DatasetError(f"{split_file}: duplicate id {sorted(duplicates)[0]!r}")
        for image_id in ids:
            self.image_path(image_id)
            if not self.label_path(image_id).is_file():
                raise DatasetError(f"{self.label_path(image_id)}: label of id {image_id!r} ({split_file}) not found")
        return ids

    def image_path(self, image_id: str) -> Path:
        for suffix in IMAGE_SUFFIXES:
            candidate = self.root / "images" / f"{image_id}{suffix}"
            if candidate.is_file():
                return candidate
        raise DatasetError(f"{self.root / 'images' / image_id}.jpg: image of id {image_id!r} not found "
                           f"(looked for {', '.join(IMAGE_SUFFIXES)})")

    def label_path(self, image_id: str) -> Path:
        return self.root / "labels" / f"{image_id}.png"

    def load_image(self, image_id: str) -> np.ndarray:
        """The image as an (H, W, 3) uint8 RGB array."""
        return read_rgb_image(self.image_path(image_id))

    def load_label(self, image_id: str, expected_size: tuple[int, int] | None = None) -> np.ndarray:
        """The label map as an (H, W) uint8 array of class indices, 255 = ignore; with ``background`` ignore,
        background pixels are 255 too. Every stage reads labels through here."""
        path = self.label_path(image_id)
        try:
            with Image.open(path) as image:
                if image.mode not in ("L", "P"):
                    raise DatasetError(f"{path}: label must be a single-channel PNG, got mode {image.mode}")
                label = np.array(image)
        except (OSError, SyntaxError, ValueError) as error:
            raise DatasetError(f"{path}: unreadable label ({error})") from error
        invalid = (label >= len(self.class_names)) & (label != IGNORE_INDEX)
        if invalid.any():
            raise DatasetError(f"{path}: label value {int(label[invalid][0])} is not a class index "
                               f"(0..{len(self.class_names) - 1}) or 255")
        if expected_size is not None and label.shape != expected_size:
            raise DatasetError(f"{path}: label size {label.shape[1]}x{label.shape[0]} does not match its image "
                               f"({expected_size[1]}x{expected_size[0]})")
        if self.ignored:
            label = np.where(np.isin(label, self.ignored), IGNORE_INDEX, label).astype(np.uint8)
        return label

    def load(self, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        image = self.load_image(image_id)
        return image, self.load_label(image_id, expected_size=image.shape[:2])


def link_file(source: Path, target: Path) -> None:
    """Images are linked into the prepared dataset: it is a view, and real datasets take gigabytes."""
    os.symlink(source.resolve(), target)


def prepare_folder(root: Path, output: Path, workers: int, log: Callable[[str], None]) -> None:
    """Validate a folder dataset label by label, then link it as the prepared view."""
    dataset = FolderDataset(root)
    splits = {split: dataset.ids(split) for split in SPLITS if split != "dev" or dataset.has_split(split)}
    for first, second in itertools.combinations(splits, 2):
        overlap = set(splits[first]) & set(splits[second])
        if overlap:
            raise DatasetError(f"{root / f'{first}.txt'}: id {sorted(overlap)[0]!r} is also in {second}.txt; "
                               f"a split must not share images with another")
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
            link_file(image_path, output / "images" / image_path.name)
            link_file(dataset.label_path(image_id), output / "labels" / f"{image_id}.png")
    log(f"checked and linked {', '.join(f'{len(ids)} {split}' for split, ids in splits.items())} images")


def hold_out_dev(root: Path, fraction: float, seed: int, log: Callable[[str], None]) -> None:
    """Give a prepared dataset without a dev split one: ``fraction`` of its train images, drawn by
    ``seed`` and removed from train, so that no training stage sees them."""
    if (root / "dev.txt").is_file() or fraction == 0:
        return
    train = read_lines(root / "train.txt")
    count = max(1, round(fraction * len(train)))
    if count >= len(train):
        raise DatasetError(f"dataset.dev_fraction = {fraction}: holds out {count} of the {len(train)} train "
                           f"images, leaving none to train on")
    held = set(np.random.default_rng(seed).choice(len(train), size=count, replace=False).tolist())
    (root / "dev.txt").write_text("\n".join(train[i] for i in sorted(held)) + "\n")
    (root / "train.txt").write_text("\n".join(image_id for i, image_id in enumerate(train) if i not in held) + "\n")
    log(f"dev split: {count} of the {len(train)} train images held out (dataset.dev_fraction {fraction}, "
        f"dataset.dev_seed {seed}); {len(train) - count} left to train on")


ADAPTER = DatasetAdapter("folder", prepare_folder)
