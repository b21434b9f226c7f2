"""The embedded offline demo (``dataset.name: demo``): compositional "<colour> <shape>" objects over
toned-down real photos.

Every unseen class shares its colour and its shape with seen classes, so an embedding of its name
carries what the generator needs to synthesise its features. The `demo` stage writes it in the folder
format, deterministic from the seed, and `prepare` then checks and links it like any folder dataset.
"""

from __future__ import annotations

import functools
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image
from tqdm import tqdm

from zsseg.atomic import atomic_path
from zsseg.datasets.folder import DatasetAdapter, prepare_folder

COLOURS = {
    "red": (215, 45, 40),
    "green": (45, 170, 60),
    "blue": (40, 80, 215),
    "yellow": (235, 205, 35),
}
SHAPES = ("circle", "square", "triangle", "ring")
CLASS_NAMES = ("background", *(f"{colour} {shape}" for colour in COLOURS for shape in SHAPES))
UNSEEN_ORDER = ("blue square", "yellow triangle", "red ring", "green circle", "yellow circle",
                "green ring", "red square", "blue triangle", "green triangle", "blue ring")
# Photos and textures bundled inside scikit-image (no download).
BACKGROUND_SOURCES = ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel",
                      "hubble_deep_field", "immunohistochemistry", "moon", "page", "rocket", "text", "clock")


@functools.cache
def _load_backgrounds() -> list[np.ndarray]:
    """The photos, decoded once per process (0.35 s) rather than once per batch of images. Not modified."""
    backgrounds = []
    for name in BACKGROUND_SOURCES:
        image = np.asarray(getattr(skimage.data, name)())
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        backgrounds.append(image[..., :3].astype(np.float32))
    return backgrounds


def _background(rng: np.random.Generator, backgrounds: list[np.ndarray], size: int) -> np.ndarray:
    source = backgrounds[rng.integers(len(backgrounds))]
    crop = int(rng.integers(size, min(source.shape[:2]) + 1))
    top = int(rng.integers(source.shape[0] - crop + 1))
    left = int(rng.integers(source.shape[1] - crop + 1))
    patch = source[top:top + crop, left:left + crop]
    patch = np.asarray(Image.fromarray(patch.astype(np.uint8)).resize((size, size), Image.BILINEAR), np.float32)
    grey = patch.mean(axis=2, keepdims=True)
    # Toned down: mostly desaturated and low contrast, so that the coloured objects carry the classes.
    patch = 0.3 * patch + 0.7 * grey
    return 0.45 * (patch - patch.mean()) + float(rng.uniform(90, 150))


def _shape_mask(shape: str, size: int, rng: np.random.Generator) -> np.ndarray:
    radius = float(rng.uniform(0.12, 0.26)) * size
    centre_y, centre_x = rng.uniform(radius * 0.6, size - radius * 0.6, size=2)
    angle = float(rng.uniform(0, 2 * np.pi))
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dy, dx = y - centre_y, x - centre_x
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    distance = np.hypot(dx, dy)
    if shape == "circle":
        return distance <= radius
    if shape == "ring":
        return (distance <= radius) & (distance >= 0.55 * radius)
    if shape == "square":
        half = radius * 0.85
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    # An equilateral triangle: inside all three half-planes whose normals are 120 degrees apart.
    inside = np.ones_like(u, dtype=bool)
    for k in range(3):
        theta = 2 * np.pi * k / 3
        inside &= np.cos(theta) * u + np.sin(theta) * v <= 0.5 * radius * 1.15
    return inside


def render_image(rng: np.random.Generator, backgrounds: list[np.ndarray], size: int,
                 min_objects: int, max_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """One RGB image and its label map (class indices in ``CLASS_NAMES`` order)."""
    image = _background(rng, backgrounds, size)
    label = np.zeros((size, size), dtype=np.uint8)
    for _ in range(int(rng.integers(min_objects, max_objects + 1))):
        class_index = int(rng.integers(1, len(CLASS_NAMES)))
        colour_name, shape = CLASS_NAMES[class_index].split(" ")
        mask = _shape_mask(shape, size, rng)
        colour = np.asarray(COLOURS[colour_name], np.float32) + rng.normal(0, 12, size=3)
        shading = rng.normal(0, 10, size=(size, size, 1))
        image = np.where(mask[..., None], colour + shading, image)
        label[mask] = class_index
    return np.clip(image, 0, 255).astype(np.uint8), label


def _write_images(root: Path, split: str, split_index: int, indices: range, size: int, min_objects: int,
                  max_objects: int, seed: int) -> int:
    backgrounds = _load_backgrounds()
    for index in indices:
        # One generator per image: the output does not depend on how images are spread over workers.
        rng = np.random.default_rng([seed, split_index, index])
        image, label = render_image(rng, backgrounds, size, min_objects, max_objects)
        image_id = f"{split}_{index:05d}"
        # JPEG, as photos are stored; lossless PNG encoding of the noisy images costs 5x more.
        Image.fromarray(image).save(root / "images" / f"{image_id}.jpg", quality=95)
        Image.fromarray(label, mode="L").save(root / "labels" / f"{image_id}.png", compress_level=1)
    return len(indices)


def write_demo_dataset(output: str | Path, train_images: int, val_images: int, image_size: int,
                       min_objects: int, max_objects: int, seed: int, workers: int = 1, dev_images: int = 0) -> None:
    """Write the demo in the folder format at ``output``, atomically, with ``workers`` processes. Each split
    has its own random stream; the dev split (``dev_images``) is for tuning, val for reporting."""
    with atomic_path(output, directory=True) as root:
        (root / "images").mkdir()
        (root / "labels").mkdir()
        (root / "classes.txt").write_text("\n".join(CLASS_NAMES) + "\n")
        (root / "unseen.txt").write_text("\n".join(UNSEEN_ORDER) + "\n")
        jobs = []
        splits = (("train", train_images), ("val", val_images), ("dev", dev_images))
        for split_index, (split, count) in enumerate(splits):
            if count == 0:
                continue
            (root / f"{split}.txt").write_text("\n".join(f"{split}_{index:05d}" for index in range(count)) + "\n")
            step = max(1, -(-count // (4 * workers)))
            jobs += [(root, split, split_index, range(start, min(start + step, count)), image_size, min_objects,
                      max_objects, seed) for start in range(0, count, step)]
        with tqdm(total=train_images + val_images + dev_images, desc="demo", unit="img") as progress:
            if workers == 1:
                for job in jobs:
                    progress.update(_write_images(*job))
            else:
                with ProcessPoolExecutor(max_workers=workers) as pool:
                    for done in as_completed([pool.submit(_write_images, *job) for job in jobs]):
                        progress.update(done.result())


ADAPTER = DatasetAdapter("demo", prepare_folder)
