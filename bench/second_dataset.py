"""A second compositional dataset, in the folder format: "<colour> <shape>" objects of other shapes,
colours and sizes than the demo's, to check on dev that a choice made on the demo carries over.

Usage (from the project root, with the venv active):

    python bench/second_dataset.py OUTPUT [--train-images 1500] [--val-images 300] [--dev-images 200]
                                          [--image-size 128] [--seed 0] [--min-objects 1] [--max-objects 3]
                                          [--workers N] [--force]

It writes OUTPUT atomically (nothing under that name until every file is written), deterministic from
--seed: the same seed gives byte-identical files whatever --workers is. The split sizes default to the
demo's (params.yaml `demo:`). OUTPUT must not exist or be an empty directory, unless --force replaces it.

The dataset: 20 classes and background. Shapes cross, diamond, star, crescent and hexagon, in orange,
purple, cyan and pink, 1 to 3 per image, from small (radius 6% of the image side) to large (32%, drawn
log-uniformly, so that small objects are common) over the demo's toned-down scikit-image photos, rotated
and flipped. Every unseen class of `unseen.txt` (10, nested: K takes the first K) shares its colour and
its shape with classes that stay seen at every K, so its name's embedding says what it looks like.

Run the pipeline on it: the `folder` adapter reads it, and its `dev.txt` is the dev split (so
`dataset.dev_fraction` is not used). In params.yaml (or `dvc exp run -S KEY=VALUE` for each):

    dataset.name: folder
    dataset.root: OUTPUT          # an absolute path, or one relative to the project root
    dataset.unseen: 4             # K = 1..10, the first K lines of OUTPUT/unseen.txt
    embed.source: minilm          # the default (packaged all-MiniLM-L6-v2); glove has every word too

for example `dvc exp run -S dataset.name=folder -S dataset.root=/data/second -S dataset.unseen=10`. The K x seed
grid (`snakemake --cores 8 table`, `table.k_values` 2..10) reads params.yaml only (the Snakefile refuses
--config), so set the keys there, in a copy of the project if the demo's grid must stay. Tune on dev only.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import skimage.draw
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zsseg.atomic import atomic_path  # noqa: E402
from zsseg.datasets.demo import _background, _load_backgrounds  # noqa: E402

COLOURS = {
    "orange": (240, 135, 20),
    "purple": (125, 50, 180),
    "cyan": (25, 195, 210),
    "pink": (245, 115, 175),
}
SHAPES = ("cross", "diamond", "star", "crescent", "hexagon")
CLASS_NAMES = ("background", *(f"{colour} {shape}" for colour in COLOURS for shape in SHAPES))
# Nested: at every K each colour and each shape keeps seen classes. At K = 10 each shape has 2 unseen
# classes of 4, each colour 2 or 3 of 5.
UNSEEN_ORDER = ("orange cross", "purple star", "cyan hexagon", "pink diamond", "cyan crescent",
                "purple cross", "orange diamond", "pink star", "purple crescent", "pink hexagon")
SPLITS = ("train", "val", "dev")
# Object radius as a share of the image side, drawn log-uniformly: the demo's is uniform over 0.12-0.26.
RADIUS_RANGE = (0.06, 0.32)
MIN_RADIUS_PIXELS = 3.0


def _polygon(vertices: np.ndarray, centre: np.ndarray, angle: float, size: int) -> np.ndarray:
    """A polygon given in the object's own (u, v) frame, rotated by ``angle`` and moved to ``centre`` (x, y)."""
    cos, sin = np.cos(angle), np.sin(angle)
    x = centre[0] + cos * vertices[:, 0] - sin * vertices[:, 1]
    y = centre[1] + sin * vertices[:, 0] + cos * vertices[:, 1]
    mask = np.zeros((size, size), dtype=bool)
    # skimage puts pixel centres on integers; the objects' centres are in continuous coordinates (0.5 = centre).
    rows, columns = skimage.draw.polygon(y - 0.5, x - 0.5, shape=(size, size))
    mask[rows, columns] = True
    return mask


def _regular(count: int, radii: tuple[float, ...]) -> np.ndarray:
    """Vertices at ``count`` * len(radii) equal angles, cycling through ``radii`` (a star: outer, inner)."""
    steps = count * len(radii)
    angles = 2 * np.pi * np.arange(steps) / steps
    lengths = np.asarray([radii[k % len(radii)] for k in range(steps)])
    return np.stack([lengths * np.cos(angles), lengths * np.sin(angles)], axis=1)


def shape_mask(shape: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """The pixels of one object of ``shape`` at a random size, place and rotation."""
    low, high = np.log(RADIUS_RANGE[0]), np.log(RADIUS_RANGE[1])
    radius = max(MIN_RADIUS_PIXELS, float(np.exp(rng.uniform(low, high))) * size)
    centre = rng.uniform(radius * 0.6, size - radius * 0.6, size=2)
    angle = float(rng.uniform(0, 2 * np.pi))
    if shape == "cross":
        arm = 0.28 * radius
        vertices = np.asarray([(arm, arm), (radius, arm), (radius, -arm), (arm, -arm), (arm, -radius),
                               (-arm, -radius), (-arm, -arm), (-radius, -arm), (-radius, arm), (-arm, arm),
                               (-arm, radius), (arm, radius)])
    elif shape == "diamond":
        vertices = np.asarray([(radius, 0), (0, 0.6 * radius), (-radius, 0), (0, -0.6 * radius)])
    elif shape == "star":
        vertices = _regular(5, (radius, 0.42 * radius))
    elif shape == "hexagon":
        vertices = _regular(6, (0.92 * radius,))
    elif shape == "crescent":
        y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
        dx, dy = x - centre[0], y - centre[1]
        u = np.cos(angle) * dx + np.sin(angle) * dy
        v = -np.sin(angle) * dx + np.cos(angle) * dy
        return (np.hypot(u, v) <= radius) & (np.hypot(u - 0.45 * radius, v) > 0.8 * radius)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return _polygon(vertices, centre, angle, size)


def render_image(rng: np.random.Generator, backgrounds: list[np.ndarray], size: int,
                 min_objects: int, max_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """One RGB image and its label map (class indices in ``CLASS_NAMES`` order); later objects occlude earlier."""
    image = _background(rng, backgrounds, size)
    image = np.rot90(image, k=int(rng.integers(4)))
    if rng.random() < 0.5:
        image = image[:, ::-1]
    label = np.zeros((size, size), dtype=np.uint8)
    for _ in range(int(rng.integers(min_objects, max_objects + 1))):
        class_index = int(rng.integers(1, len(CLASS_NAMES)))
        colour_name, shape = CLASS_NAMES[class_index].split(" ")
        mask = shape_mask(shape, size, rng)
        colour = np.asarray(COLOURS[colour_name], np.float32) + rng.normal(0, 10, size=3)
        # Lit from one side: a linear brightness gradient across the image, plus fine noise.
        direction = rng.normal(size=2)
        direction /= max(float(np.hypot(*direction)), 1e-6)
        ramp = (np.arange(size, dtype=np.float32) / size - 0.5) * float(rng.uniform(0, 0.35))
        gradient = 1 + direction[0] * ramp[None, :] + direction[1] * ramp[:, None]
        shaded = colour * gradient[..., None] + rng.normal(0, 7, size=(size, size, 1))
        image = np.where(mask[..., None], shaded, image)
        label[mask] = class_index
    return np.clip(image, 0, 255).astype(np.uint8), label


def _write_images(root: Path, split: str, split_index: int, indices: range, size: int, min_objects: int,
                  max_objects: int, seed: int) -> tuple[int, np.ndarray, list[int]]:
    """Write images ``indices`` of ``split``: their count, their pixels per class, and per image the set
    of classes it shows as a bit mask."""
    backgrounds = _load_backgrounds()
    pixels = np.zeros(len(CLASS_NAMES), dtype=np.int64)
    present = []
    for index in indices:
        # One generator per image: the files do not depend on how images are spread over workers. The
        # constant keeps these streams apart from the demo's ([seed, split, index]).
        rng = np.random.default_rng([2, seed, split_index, index])
        image, label = render_image(rng, backgrounds, size, min_objects, max_objects)
        image_id = f"{split}_{index:05d}"
        Image.fromarray(image).save(root / "images" / f"{image_id}.jpg", quality=95)
        Image.fromarray(label, mode="L").save(root / "labels" / f"{image_id}.png", compress_level=1)
        counts = np.bincount(label.ravel(), minlength=len(CLASS_NAMES))
        pixels += counts
        present.append(sum(1 << int(c) for c in np.flatnonzero(counts)))
    return len(indices), pixels, present


def write_second_dataset(output: str | Path, train_images: int = 1500, val_images: int = 300, dev_images: int = 200,
                         image_size: int = 128, seed: int = 0, min_objects: int = 1, max_objects: int = 3,
                         workers: int = 1, progress: bool = True) -> dict:
    """Write the dataset at ``output`` atomically; returns per split its pixels per class and, per image,
    the bit mask of the classes it shows (for the summary)."""
    statistics = {split: {"pixels": np.zeros(len(CLASS_NAMES), dtype=np.int64), "present": {}} for split in SPLITS}
    with atomic_path(output, directory=True) as root:
        (root / "images").mkdir()
        (root / "labels").mkdir()
        (root / "classes.txt").write_text("\n".join(CLASS_NAMES) + "\n")
        (root / "unseen.txt").write_text("\n".join(UNSEEN_ORDER) + "\n")
        jobs = []
        counts = dict(zip(SPLITS, (train_images, val_images, dev_images)))
        for split_index, (split, count) in enumerate(counts.items()):
            if count == 0:
                continue
            (root / f"{split}.txt").write_text("\n".join(f"{split}_{index:05d}" for index in range(count)) + "\n")
            step = max(1, -(-count // (4 * workers)))
            jobs += [(root, split, split_index, range(start, min(start + step, count)), image_size, min_objects,
                      max_objects, seed) for start in range(0, count, step)]

        def collect(job: tuple, result: tuple[int, np.ndarray, list[int]]) -> int:
            done, pixels, present = result
            statistics[job[1]]["pixels"] += pixels
            statistics[job[1]]["present"].update(zip(job[3], present))
            return done

        with tqdm(total=sum(counts.values()), desc="second dataset", unit="img", disable=not progress) as bar:
            if workers == 1:
                for job in jobs:
                    bar.update(collect(job, _write_images(*job)))
            else:
                with ProcessPoolExecutor(max_workers=workers) as pool:
                    futures = {pool.submit(_write_images, *job): job for job in jobs}
                    for future in as_completed(futures):
                        bar.update(collect(futures[future], future.result()))
    for split in SPLITS:
        present = statistics[split]["present"]
        statistics[split]["present"] = [present[index] for index in sorted(present)]
    return statistics


def unlabelled_images(present: list[int], k: int) -> int:
    """How many images show at least one of the first ``k`` unseen classes (their labels never train)."""
    unseen = sum(1 << CLASS_NAMES.index(name) for name in UNSEEN_ORDER[:k])
    return sum(1 for mask in present if mask & unseen)


def summary(statistics: dict, output: Path) -> str:
    train = statistics["train"]
    lines = [f"wrote {output}: " + ", ".join(f"{len(statistics[s]['present'])} {s}" for s in SPLITS) + " images",
             f"{len(CLASS_NAMES)} classes (background first); unseen order (K takes the first K):",
             "  " + ", ".join(f"{k + 1}. {name}" for k, name in enumerate(UNSEEN_ORDER))]
    total = max(int(train["pixels"].sum()), 1)
    images = [sum(1 for mask in train["present"] if mask >> index & 1) for index in range(len(CLASS_NAMES))]
    lines.append(f"{'class':<18}{'train pixels %':>15}{'train images':>14}{'unseen from K':>15}")
    for index, name in enumerate(CLASS_NAMES):
        k = str(UNSEEN_ORDER.index(name) + 1) if name in UNSEEN_ORDER else "-"
        lines.append(f"{name:<18}{100 * train['pixels'][index] / total:15.2f}{images[index]:14d}{k:>15}")
    for k in range(2, len(UNSEEN_ORDER) + 1, 2):
        count = unlabelled_images(train["present"], k)
        lines.append(f"K = {k:2d}: {count} of {len(train['present'])} train images show an unseen class "
                     f"(unlabelled), {len(train['present']) - count} labelled")
    return "\n".join(lines)


def check_compositional() -> None:
    """For every K, every unseen class's colour and shape belong to seen classes too (an invariant of the
    constants above, checked before writing anything)."""
    for k in range(1, len(UNSEEN_ORDER) + 1):
        seen = [name.split(" ") for name in CLASS_NAMES[1:] if name not in UNSEEN_ORDER[:k]]
        for name in UNSEEN_ORDER[:k]:
            colour, shape = name.split(" ")
            if not any(c == colour for c, _ in seen) or not any(s == shape for _, s in seen):
                raise AssertionError(f"K = {k}: unseen {name!r} has no seen class of its colour or shape")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="dataset directory to write (absent or empty, unless --force)")
    parser.add_argument("--train-images", type=int, default=1500)
    parser.add_argument("--val-images", type=int, default=300)
    parser.add_argument("--dev-images", type=int, default=200, help="0: no dev.txt (prepare then holds out "
                        "dataset.dev_fraction of train)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-objects", type=int, default=1)
    parser.add_argument("--max-objects", type=int, default=3)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="processes (default: the cores, at most 4); the files do not depend on it")
    parser.add_argument("--force", action="store_true", help="replace OUTPUT if it exists and is not empty")
    args = parser.parse_args(argv)
    for name in ("train_images", "val_images", "min_objects", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} = {getattr(args, name)}: expected an integer >= 1")
    if args.dev_images < 0:
        parser.error(f"--dev-images = {args.dev_images}: expected an integer >= 0")
    if args.image_size < 32:
        parser.error(f"--image-size = {args.image_size}: expected an integer >= 32 (the pipeline's minimum)")
    if args.max_objects < args.min_objects:
        parser.error(f"--max-objects = {args.max_objects}: expected an integer >= --min-objects ({args.min_objects})")
    if args.seed < 0:
        parser.error(f"--seed = {args.seed}: expected an integer >= 0")
    output = args.output
    if output.exists() or output.is_symlink():
        if not output.is_dir() or output.is_symlink():
            parser.error(f"{output}: exists and is not a directory; give a new path")
        if any(output.iterdir()) and not args.force:
            parser.error(f"{output}: exists and is not empty; give a new path, or --force to replace it")
    check_compositional()
    statistics = write_second_dataset(output, args.train_images, args.val_images, args.dev_images, args.image_size,
                                      args.seed, args.min_objects, args.max_objects, args.workers)
    print(summary(statistics, output))


if __name__ == "__main__":
    main()
