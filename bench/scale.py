"""Benchmark: what one real-size cell (one K, one seed) of a VOC or Pascal-Context grid costs, predicted from
synthetic cells of the real shape at a few fractions of the real size.

Usage: python bench/scale.py --dataset voc|context [--fractions 1/32 1/16 1/8] [--k 10] [--seed 0]
                             [--unlabelled-share S] [--work DIR] [--json PATH]   (from the project root, venv active)

No VOC or Context data can be downloaded here, so each cell is made up, with the real shape:

- the preset's params (zsseg/preset_files/NAME.yaml over params.yaml): its stride (4), feature dimension
  (256) and batch sizes;
- the real class list and ZS3Net's unseen order, the real split sizes x F (VOC: 10,582 train images, of
  which dataset.dev_fraction is held out as dev, and 1,449 val; Context: 4,998 and 5,105), and image sizes
  drawn from VOC's common ones (500 px on the long side, about 500 x 370 on average);
- objects placed at random, each class in the share of images that VOC2012's trainval statistics give it
  (IMAGE_SHARES), independently of the others. The share of unlabelled training images at K follows from
  those shares (at K = 10 on VOC about 44%); Context's classes that VOC lacks take the shares assumed in
  CONTEXT_ASSUMED_SHARES. ``--unlabelled-share`` overrides it: each training image then holds an unseen
  object with that probability;
- features with class structure: each class is a Gaussian cluster in 256-d, and each image is painted in
  its classes' colours, so a stand-in network (the mean colour of each 4 x 4 block, the nearest class
  colour's cluster centre, Gaussian noise) gives clusters with noisy masks where blocks mix classes.
  The centres and the class embeddings are linear images of one 8-d code per class (the embeddings with
  noise), so that the generator can learn the map from the seen classes and mining finds pseudo-features
  as it would on real data.

The benchmark skips the backbone: the features stage's library function runs with the stand-in network,
and then every stage after `features` runs as its own process with the command both engines run
(``zsseg.pipeline.stage_commands``). Per stage it records the wall time, the peak RSS, the bytes the
process read and wrote through read and write calls while it worked (the caches dominate: imports and
the stand-in's files are a few MB), and the size of what it wrote. It fits each figure against F with a
least-squares line and prints the predicted cost of a full cell and of the 15-cell grid (5 K x 3 seeds;
the K = 10 cell, the largest, counted 15 times: an upper bound) on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # before torch, which imports tqdm: the bars would flood the output
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from machine_load import other_load_since, snapshot  # noqa: E402
from zsseg.classifier import LOG_FILE  # noqa: E402
from zsseg.config import parse_params  # noqa: E402
from zsseg.datasets import context, voc  # noqa: E402
from zsseg.datasets.conversion import resolve_class_names  # noqa: E402
from zsseg.datasets.folder import SPLITS, FolderDataset  # noqa: E402
from zsseg.disk import directory_bytes  # noqa: E402
from zsseg.embeddings import save_embeddings  # noqa: E402
from zsseg.feature_cache import cache_params_hash  # noqa: E402
from zsseg.feature_extraction import write_training_caches  # noqa: E402
from zsseg.labels import IGNORE_INDEX  # noqa: E402
from zsseg.network import ARCHITECTURES, NETWORK_FILE, Architecture, SegmentationNetwork, save_network  # noqa: E402
from zsseg.pipeline import GRID, STAGES, stage_commands  # noqa: E402
from zsseg.presets import PRESETS  # noqa: E402
from zsseg.runtime import SeedPurpose, derive_seed  # noqa: E402

# Images per class in VOC2012's trainval detection set (11,540 images): the devkit's statistics table.
VOC2012_TRAINVAL_IMAGES = {
    "aeroplane": 670, "bicycle": 552, "bird": 765, "boat": 508, "bottle": 706, "bus": 421, "car": 1161, "cat": 1080,
    "chair": 1119, "cow": 303, "diningtable": 538, "dog": 1286, "horse": 482, "motorbike": 526, "person": 4087,
    "pottedplant": 527, "sheep": 325, "sofa": 507, "train": 544, "tvmonitor": 575}
VOC2012_TRAINVAL_TOTAL = 11540
CONTEXT_CLASS_NAMES = (
    "background", "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book", "bottle",
    "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow", "cup", "curtain",
    "dog", "door", "fence", "floor", "flower", "food", "grass", "ground", "horse", "keyboard", "light", "motorbike",
    "mountain", "mouse", "person", "plate", "platform", "pottedplant", "road", "rock", "sheep", "shelves",
    "sidewalk", "sign", "sky", "snow", "sofa", "diningtable", "track", "train", "tree", "truck", "tvmonitor",
    "wall", "water", "window", "wood")
# Context's scene classes are laid as bands behind the objects, two or three per image.
CONTEXT_STUFF = ("building", "ceiling", "floor", "grass", "ground", "mountain", "platform", "road", "rock",
                 "sidewalk", "sky", "snow", "track", "wall", "water", "wood")
# Assumed, not published: the share of Context images holding each object class that VOC lacks.
CONTEXT_ASSUMED_SHARES = {"fence": 0.10, "keyboard": 0.02}
CONTEXT_OTHER_OBJECT_SHARE = 0.05
# VOC's common image sizes (height, width), 500 px on the long side, and how often each is drawn.
IMAGE_SIZES = {(375, 500): 0.40, (333, 500): 0.20, (500, 375): 0.12, (500, 333): 0.08, (366, 500): 0.07,
               (281, 500): 0.05, (400, 500): 0.04, (500, 500): 0.04}
# How far apart the class clusters are, against the noise of each feature pixel.
CLUSTER_SPREAD, FEATURE_NOISE, EMBEDDING_NOISE, EMBEDDING_DIM, LATENT_DIM = 0.5, 1.0, 0.05, 300, 4
STAND_IN, MAX_CLASSES = "stand_in", 64


@dataclass(frozen=True)
class DatasetShape:
    preset: str
    class_names: tuple[str, ...]
    unseen_order: tuple[str, ...]
    train_images: int                 # the dataset's train split, before the dev split is held out of it
    val_images: int
    image_shares: dict[str, float]    # the share of images that hold an object of each class
    stuff: tuple[str, ...] = field(default=())


def _voc_shares(names: tuple[str, ...]) -> dict[str, float]:
    return {name: VOC2012_TRAINVAL_IMAGES[name] / VOC2012_TRAINVAL_TOTAL for name in names
            if name in VOC2012_TRAINVAL_IMAGES}


SHAPES = {
    "voc": DatasetShape("voc", voc.CLASS_NAMES, tuple(resolve_class_names(voc.UNSEEN_ORDER, voc.CLASS_NAMES, "VOC")),
                        10582, 1449, _voc_shares(voc.CLASS_NAMES)),
    "context": DatasetShape("context", CONTEXT_CLASS_NAMES, context.UNSEEN_ORDER, 4998, 5105, {
        **{name: CONTEXT_OTHER_OBJECT_SHARE for name in CONTEXT_CLASS_NAMES[1:] if name not in CONTEXT_STUFF},
        **_voc_shares(CONTEXT_CLASS_NAMES), **CONTEXT_ASSUMED_SHARES}, CONTEXT_STUFF),
}


def unlabelled_share(shape: DatasetShape, k: int) -> float:
    """The share of training images holding one of the first K unseen classes, classes independent."""
    return 1.0 - float(np.prod([1.0 - shape.image_shares[name] for name in shape.unseen_order[:k]]))


def palette(count: int) -> np.ndarray:
    """``count`` colours 64 levels apart on each channel: the nearest one survives mixing and noise."""
    levels = np.array([32, 96, 160, 224])
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    if count > len(grid):
        raise ValueError(f"{count} classes need more than {len(grid)} colours")
    return grid[np.random.default_rng(0).permutation(len(grid))[:count]].astype(np.uint8)


def synthetic_label(shape: DatasetShape, rng: np.random.Generator, forced_unseen: bool | None,
                    unseen: set[int]) -> np.ndarray:
    """A label map: scene bands (Context), then one rectangle per present object class, 255 borders."""
    height, width = list(IMAGE_SIZES)[rng.choice(len(IMAGE_SIZES), p=list(IMAGE_SIZES.values()))]
    names = shape.class_names
    label = np.zeros((height, width), dtype=np.uint8)
    if shape.stuff:
        bands = rng.choice([names.index(name) for name in shape.stuff], size=rng.integers(2, 4), replace=False)
        edges = np.sort(rng.integers(0, height, size=len(bands) - 1))
        for band, start, stop in zip(bands, [0, *edges], [*edges, height]):
            label[start:stop] = band
    objects = [index for index, name in enumerate(names)
               if name in shape.image_shares and name not in shape.stuff and rng.random() < shape.image_shares[name]]
    if forced_unseen is not None:
        objects = [index for index in objects if index not in unseen]
        if forced_unseen:
            objects.append(int(rng.choice(sorted(unseen))))
    if not objects:
        seen_objects = [i for i, name in enumerate(names) if name in shape.image_shares and i not in unseen]
        objects = [int(rng.choice(seen_objects))]
    for index in rng.permutation(objects):
        box_height, box_width = (rng.uniform(0.15, 0.6, size=2) * (height, width)).astype(int)
        top, left = rng.integers(0, height - box_height), rng.integers(0, width - box_width)
        label[top:top + box_height, left:left + box_width] = index
        for edge in (label[top:top + 2, left:left + box_width], label[top + box_height - 2:top + box_height,
                                                                        left:left + box_width]):
            edge[...] = IGNORE_INDEX
    return label


def write_dataset(root: Path, shape: DatasetShape, fraction: float, k: int, dev_fraction: float, seed: int,
                  share: float | None) -> dict[str, int]:
    """The folder format (docs/datasets.md) at ``fraction`` of the real split sizes; the images are the labels
    painted in the class colours (the stand-in network reads them back). Returns the images per split."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("\n".join(shape.class_names) + "\n")
    (root / "unseen.txt").write_text("\n".join(shape.unseen_order) + "\n")
    colours = palette(len(shape.class_names))
    unseen = {shape.class_names.index(name) for name in shape.unseen_order[:k]}
    train_total = max(2, round(shape.train_images * fraction))
    dev = max(1, round(train_total * dev_fraction))
    counts = {"train": train_total - dev, "val": max(1, round(shape.val_images * fraction)), "dev": dev}
    for split_index, split in enumerate(SPLITS):
        ids = [f"{split}_{i:06d}" for i in range(counts[split])]
        (root / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for i, image_id in enumerate(ids):
            rng = np.random.default_rng([seed, split_index, i])
            forced = (rng.random() < share) if share is not None and split == "train" else None
            label = synthetic_label(shape, rng, forced, unseen)
            painted = np.where(label == IGNORE_INDEX, 0, label)
            image = colours[painted] + rng.integers(-8, 9, size=(*label.shape, 3))
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / "images" / f"{image_id}.png")
            Image.fromarray(label).save(root / "labels" / f"{image_id}.png")
    return counts


class StandInEncoder(nn.Module):
    """The mean colour of each 4 x 4 block (ceil, as a stride-4 network's maps)."""

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = F.avg_pool2d(images, 4, ceil_mode=True)
        return pooled, pooled


class StandInHead(nn.Module):
    """The cluster centre of the nearest class colour plus Gaussian noise drawn from the block's own colours,
    so an image gets the same features in any batch. Colours and centres are buffers, saved with the network."""

    def __init__(self, feature_dim: int) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))
        self.register_buffer("colours", torch.zeros(MAX_CLASSES, 3))
        self.register_buffer("centres", torch.zeros(MAX_CLASSES, feature_dim))

    def set_classes(self, colours: np.ndarray, centres: torch.Tensor) -> None:
        self.count.fill_(len(colours))
        self.colours[:len(colours)] = torch.from_numpy(colours).float()
        self.centres[:len(colours)] = centres

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        count = int(self.count)
        pixels = low.permute(0, 2, 3, 1)
        classes = torch.cdist(pixels.reshape(-1, 3), self.colours[:count]).argmin(dim=1).reshape(pixels.shape[:3])
        features = self.centres[:count][classes]
        for index in range(features.shape[0]):
            noise = torch.Generator().manual_seed(zlib.crc32(low[index].numpy().tobytes()))
            features[index] += FEATURE_NOISE * torch.randn(features[index].shape, generator=noise)
        return features.permute(0, 3, 1, 2)


def register_stand_in() -> None:
    """The stand-in network as a ``backbone.arch`` of this process, so that the stages' own load_network
    rebuilds it from network.pt: the bench's probe registers it before each stage runs."""
    ARCHITECTURES[STAND_IN] = Architecture(
        STAND_IN, lambda feature_dim, aspp_rates, weights: (StandInEncoder(), StandInHead(feature_dim), 4),
        packaged_weights=False, weight_files=False, zs3net_checkpoints=False)


def probe_command(module: str, arguments: list[str], result: Path) -> list[str]:
    """Run a stage's main() in a fresh process and write its time, peak RSS and read/write calls' bytes."""
    script = (
        "import importlib, json, resource, sys, time\n"
        "def io():\n"
        "    fields = dict(line.split(': ') for line in open('/proc/self/io').read().splitlines())\n"
        "    return int(fields['rchar']), int(fields['wchar'])\n"
        "import scale\n"
        "scale.register_stand_in()\n"
        "module = importlib.import_module(sys.argv[1])\n"
        "read, written = io()\n"
        "module.main(sys.argv[3:])\n"
        "read_after, written_after = io()\n"
        "json.dump({'read': read_after - read, 'written': written_after - written,\n"
        "           'peak_rss': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}, open(sys.argv[2], 'w'))\n")
    return [sys.executable, "-c", script, module, str(result), *arguments]


def stage_outputs(module: str, arguments: list[str], data: Path) -> list[Path]:
    entry = next(entry for entry in STAGES if entry.module == module)
    return [data.parent / arguments[arguments.index(f"--{option.replace('_', '-')}") + 1] for option in entry.outputs]


def preset_params(shape: DatasetShape, k: int, seed: int) -> dict:
    """params.yaml with the dataset's preset over it, for a cell of the synthetic dataset on the CPU."""
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    preset = yaml.safe_load((PRESETS / f"{shape.preset}.yaml").read_text())

    def overlay(node: dict, values: dict) -> None:
        for key, value in values.items():
            overlay(node[key], value) if isinstance(value, dict) else node.__setitem__(key, value)

    overlay(base, preset)
    overlay(base, {"seed": seed, "device": "cpu", "dataset": {"root": "data/dataset", "unseen": k},
                   "embed": {"path": None}, "backbone": {"weights": "none"}})
    return base


def run_cell(work: Path, shape: DatasetShape, fraction: float, k: int, seed: int, share: float | None) -> dict:
    """One synthetic cell at ``fraction``: every stage's figures."""
    base = preset_params(shape, k, seed)
    shutil.rmtree(work, ignore_errors=True)
    data = work / "data"
    data.mkdir(parents=True)
    (work / "params.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    params = parse_params(base)
    figures: dict[str, dict] = {}
    started = time.perf_counter()
    counts = write_dataset(data / "dataset", shape, fraction, k, params.dataset.dev_fraction, seed, share)
    figures["synthetic dataset"] = {"seconds": time.perf_counter() - started, "output_bytes": 0}
    dataset = FolderDataset(data / "dataset")
    class_split = dataset.class_split(k)
    generator = torch.Generator().manual_seed(seed)
    # Centres and embeddings are linear images of one latent code per class, of fewer dimensions than there
    # are seen classes: the map from embedding to centre can be learnt from the seen classes alone.
    latent = torch.randn(len(shape.class_names), LATENT_DIM, generator=generator)
    centres = CLUSTER_SPREAD * latent @ torch.randn(LATENT_DIM, params.backbone.feature_dim, generator=generator)
    embeddings = (latent @ torch.randn(LATENT_DIM, EMBEDDING_DIM, generator=generator)
                  + EMBEDDING_NOISE * torch.randn(len(latent), EMBEDDING_DIM, generator=generator))
    save_embeddings(data / "embeddings.npz", shape.class_names, embeddings.numpy(), "word2vec")
    register_stand_in()
    network = SegmentationNetwork(STAND_IN, len(class_split.seen), params.backbone.feature_dim,
                                  params.backbone.aspp_rates)
    network.head.set_classes(palette(len(shape.class_names)), centres)
    (data / "backbone").mkdir()
    save_network(network, data / "backbone" / NETWORK_FILE, {})
    # As the backbone stage logs a network it did not train (a loaded checkpoint): no epochs, so no curve.
    (data / "backbone" / LOG_FILE).write_text(json.dumps([{"checkpoint": "the benchmark's stand-in"}]))
    (data / "encoder_maps.h5").touch()  # declared by the stages that run the network; unread without sharing
    torch.set_num_threads(params.threads)
    started = time.perf_counter()
    (data / "features").mkdir()
    write_training_caches(network, dataset, class_split, data / "features", params.features,
                          derive_seed(seed, SeedPurpose.CACHED_PIXELS), torch.device("cpu"),
                          {"params_hash": cache_params_hash(params), "backbone": params.backbone.arch})
    figures["features (stand-in network)"] = {"seconds": time.perf_counter() - started,
                                              "output_bytes": directory_bytes(data / "features")}
    after_features = [entry.name for entry in STAGES[[entry.name for entry in STAGES].index("features") + 1:]
                      if entry.scope != GRID]
    for module, arguments in stage_commands(base, "data", tuple(after_features)):
        name = module.removeprefix("stages.")
        if "--round" in arguments:
            name += f"@{arguments[arguments.index('--round') + 1]}"
        elif "--output" in arguments and name == "recursion_ablation":
            name += f" ({Path(arguments[arguments.index('--output') + 1]).name})"
        result = work / "probe.json"
        started = time.perf_counter()
        completed = subprocess.run(probe_command(module, arguments, result), cwd=work, capture_output=True, text=True,
                                   env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'bench'}"})
        seconds = time.perf_counter() - started
        if completed.returncode != 0:
            sys.exit(f"{name} failed at fraction {fraction}:\n{completed.stderr[-3000:]}")
        figures[name] = {"seconds": seconds, **json.loads(result.read_text()),
                         "output_bytes": sum(directory_bytes(path) for path in stage_outputs(module, arguments, data))}
        print(f"  {name}: {seconds:.1f} s", flush=True)
    train = FolderDataset(data / "dataset").ids("train")
    unlabelled = sum(class_split.is_unlabelled(dataset.load_label(image_id)) for image_id in train)
    return {"fraction": fraction, "images": counts, "unlabelled_train_images": unlabelled, "stages": figures}


def fit(fractions: list[float], values: list[float]) -> tuple[float, float]:
    """Least-squares line value = a + b * fraction: (a, b)."""
    slope, intercept = np.polyfit(fractions, values, 1)
    return float(intercept), float(slope)


def predicted(cells: list[dict], stage: str, figure: str) -> float | None:
    points = [(cell["fraction"], cell["stages"][stage].get(figure)) for cell in cells]
    if any(value is None for _, value in points):
        return None
    intercept, slope = fit([f for f, _ in points], [v for _, v in points])
    # A figure that does not grow with the size (a stage that writes almost nothing) can fit a little below 0.
    return max(0.0, intercept + slope)


def report(cells: list[dict], shape: DatasetShape, k: int) -> str:
    gigabyte = 1e9
    fractions = ", ".join(str(Fraction(cell["fraction"]).limit_denominator()) for cell in cells)
    unlabelled = ", ".join(f"{cell['unlabelled_train_images']}/{cell['images']['train']}" for cell in cells)
    lines = [f"{shape.preset}, K = {k}: fractions {fractions}; unlabelled train images {unlabelled}",
             "",
             f"{'stage':<48} {'time s':>8} {'peak RSS GB':>11} {'read GB':>8} {'written GB':>10} {'output GB':>9}"
             f"  peak RSS GB measured",
             f"{'(full cell, predicted)':<48} {'':>51}  at each fraction"]
    totals = {"seconds": 0.0, "read": 0.0, "written": 0.0, "output_bytes": 0.0}
    peak = 0.0
    for stage in cells[0]["stages"]:
        values = {figure: predicted(cells, stage, figure)
                  for figure in ("seconds", "peak_rss", "read", "written", "output_bytes")}
        for figure in totals:
            if values[figure] is not None and not (figure == "seconds" and stage == "synthetic dataset"):
                totals[figure] += values[figure]
        peak = max(peak, values["peak_rss"] or 0.0)

        def cell(value: float | None, scale: float, width: int) -> str:
            return f"{'':>{width}}" if value is None else f"{value / scale:>{width}.2f}"

        measured = " ".join(f"{c['stages'][stage]['peak_rss'] / gigabyte:.2f}" for c in cells
                            if "peak_rss" in c["stages"][stage])
        lines.append(f"{stage:<48} {cell(values['seconds'], 1, 8)} {cell(values['peak_rss'], gigabyte, 11)} "
                     f"{cell(values['read'], gigabyte, 8)} {cell(values['written'], gigabyte, 10)} "
                     f"{cell(values['output_bytes'], gigabyte, 9)}  {measured}")
    after = {figure: sum(predicted(cells, stage, figure) or 0.0 for stage in cells[0]["stages"]
                         if stage not in ("synthetic dataset", "features (stand-in network)"))
             for figure in ("seconds", "read")}
    lines += ["",
              f"full cell: {after['seconds'] / 60:.1f} min in the stages after features, "
              f"{peak / gigabyte:.2f} GB peak RSS, "
              f"{after['read'] / gigabyte:.1f} GB read, {totals['output_bytes'] / gigabyte:.1f} GB written to data/ "
              f"(features included)",
              f"15-cell grid (15 x this K = {k} cell, an upper bound): {15 * after['seconds'] / 3600:.1f} h, "
              f"{15 * after['read'] / 1e12:.2f} TB read, {15 * totals['output_bytes'] / 1e12:.2f} TB on disk"]
    return "\n".join(lines)


def network_seconds_per_image(shape: DatasetShape) -> tuple[str, float]:
    """The preset's real network (random weights), timed over two VOC-size images one at a time on this
    machine's CPU with the preset's threads: the work evaluate does per val or dev image on top of the
    stand-in's."""
    params = parse_params(preset_params(shape, 10, 0))
    torch.set_num_threads(params.threads)
    backbone = params.backbone
    network = SegmentationNetwork(backbone.arch, 2, backbone.feature_dim, backbone.aspp_rates).eval()
    image = torch.rand(1, 3, *list(IMAGE_SIZES)[0]) * 255
    with torch.no_grad():
        network.features(image)
        started = time.perf_counter()
        for _ in range(2):
            network.features(image)
    return backbone.arch, (time.perf_counter() - started) / 2


def compare_with_base(base: dict, this: dict) -> str:
    """Each stage's seconds after features, this side against the base's, at one fraction."""
    skipped = ("synthetic dataset", "features (stand-in network)")
    lines = [f"{'stage (seconds, side by side)':<48} {'base':>8} {'this':>8} {'ratio':>6}"]
    for stage in dict.fromkeys([*base["stages"], *this["stages"]]):
        if stage in skipped:
            continue
        before, after = base["stages"].get(stage, {}).get("seconds"), this["stages"].get(stage, {}).get("seconds")
        ratio = f"{after / before:6.2f}" if before and after else ("   new" if after else "  gone")
        lines.append(f"{stage:<48} {before or float('nan'):8.1f} {after or float('nan'):8.1f} {ratio}")
    totals = [sum(side["stages"][stage]["seconds"] for stage in side["stages"] if stage not in skipped)
              for side in (base, this)]
    lines.append(f"{'every stage after features':<48} {totals[0]:8.1f} {totals[1]:8.1f} {totals[1] / totals[0]:6.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(SHAPES), required=True)
    parser.add_argument("--fractions", nargs="+", default=[1 / 32, 1 / 16, 1 / 8], type=lambda t: float(Fraction(t)))
    parser.add_argument("--k", type=int, default=10, help="unseen classes (default 10, the largest cell)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unlabelled-share", type=float, default=None,
                        help="the share of training images with an unseen object (default: from the class shares)")
    parser.add_argument("--work", default="/tmp/zsseg_scale")
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument("--base", help="also run this commit's bench/scale.py at each fraction, the two sides taking "
                                       "turns, and print each stage's time against it")
    parser.add_argument("--no-network", action="store_true", help="skip timing the real network")
    args = parser.parse_args()
    shape = SHAPES[args.dataset]
    share = args.unlabelled_share
    print(f"{shape.preset}: unlabelled share of train images per K from the class shares: "
          + ", ".join(f"K={k} {unlabelled_share(shape, k):.2f}" for k in (2, 4, 6, 8, 10))
          + (f"; overridden: {share}" if share is not None else ""))
    load = snapshot()
    work = Path(args.work)
    base = work.parent / f"{work.name}_base"
    if args.base:
        shutil.rmtree(base, ignore_errors=True)
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(base), args.base], cwd=ROOT, check=True)
    cells, comparisons = [], []
    try:
        for fraction in sorted(args.fractions):
            print(f"fraction {Fraction(fraction).limit_denominator()}:", flush=True)
            if args.base:
                print("  base:", flush=True)
                measured = work.parent / f"{work.name}_base.json"
                subprocess.run([sys.executable, str(base / "bench" / "scale.py"), "--dataset", args.dataset,
                                "--fractions", str(fraction), "--k", str(args.k), "--seed", str(args.seed), "--work",
                                str(work.parent / f"{work.name}_base_cell"), "--json", str(measured),
                                *(["--unlabelled-share", str(share)] if share is not None else [])],
                               check=True, stdout=subprocess.DEVNULL)
                comparisons.append(json.loads(measured.read_text())["cells"][0])
                print("  this:", flush=True)
            cells.append(run_cell(work, shape, fraction, args.k, args.seed, share))
    finally:
        if args.base:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
    shutil.rmtree(work, ignore_errors=True)
    network = None if args.no_network else network_seconds_per_image(shape)
    if args.json:
        Path(args.json).write_text(json.dumps({"dataset": args.dataset, "k": args.k, "cells": cells,
                                               "network_seconds_per_image": network and network[1],
                                               "base": comparisons}, indent=1))
    print()
    print(report(cells, shape, args.k))
    if network:
        dev_fraction = parse_params(preset_params(shape, args.k, 0)).dataset.dev_fraction
        images = shape.val_images + round(shape.train_images * dev_fraction)
        print(f"the real network ({network[0]}, random weights) on this CPU: {network[1]:.2f} s per image; evaluate "
              f"runs it over the {images} val and dev images of a full cell: {network[1] * images / 60:.0f} min more "
              f"than the stand-in (work the features stage did before, when it cached val and dev)")
    for this, before in zip(cells, comparisons):
        print(f"\nside by side at fraction {Fraction(this['fraction']).limit_denominator()} (base {args.base}):")
        print(compare_with_base(before, this))
    print(other_load_since(load))


if __name__ == "__main__":
    main()
