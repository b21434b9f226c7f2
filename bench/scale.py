"""Benchmark: what one real-size cell (one K, one seed) of a VOC, Pascal-Context or COCO-Stuff grid costs,
predicted from synthetic cells of the real shape at a few fractions of the real size.

Usage: python bench/scale.py --dataset voc|context|cocostuff [--fractions 1/32 1/16 1/8] [--k K] [--seed 0]
                             [--unlabelled-share S] [--work DIR] [--json PATH]   (from the project root, venv active)
       (--k: the largest of the preset's table.k_values unless given: 10 for VOC and Context, 15 for COCO-Stuff)

No VOC, Context or COCO-Stuff data can be downloaded here, so each cell is made up, with the real shape:

- the preset's params (zsseg/preset_files/NAME.yaml over params.yaml): its stride (4), feature dimension
  (256) and batch sizes;
- the real class list and unseen order (ZS3Net's; COCO-Stuff: SPNet's 15, from zsseg/datasets/cocostuff.py),
  the real split sizes x F (VOC: 10,582 train images, of which dataset.dev_fraction is held out as dev, and
  1,449 val; Context: 4,998 and 5,105; COCO-Stuff: train2017's 118,287 and val2017's 5,000), and image sizes
  drawn from the dataset's common ones (the shape's image_sizes: VOC's and Context's 500 px on the long side,
  about 500 x 370 on average; COCO's 640 px, mostly 640 x 480, in shares assumed in COCO_ASSUMED_IMAGE_SIZES);
- objects placed at random, each class in the share of images that VOC2012's trainval statistics give it
  (IMAGE_SHARES), independently of the others. The share of unlabelled training images at K follows from
  those shares (at K = 10 on VOC about 44%); Context's classes that VOC lacks take the shares assumed in
  CONTEXT_ASSUMED_SHARES. COCO-Stuff's 171 classes take their shares of COCO-Stuff 10K's images
  (COCOSTUFF10K_IMAGES; about 66% unlabelled at K = 15). ``--unlabelled-share`` overrides it: each training
  image then holds an unseen object with that probability;
- scene classes as horizontal bands behind the objects: Context's stuff classes two or three to an image,
  COCO-Stuff's 91 stuff classes each in its own share of images (at least one band an image);
- features with class structure: each class is a Gaussian cluster in 256-d, and each image is painted in
  its classes' colours (up to MAX_CLASSES = 216: 6 levels per channel), so a stand-in network (the mean
  colour of each 4 x 4 block, the nearest class colour's cluster centre, Gaussian noise) gives clusters
  with noisy masks where blocks mix classes.
  The centres and the class embeddings are linear images of one 8-d code per class (the embeddings with
  noise), so that the generator can learn the map from the seen classes and mining finds pseudo-features
  as it would on real data.

The benchmark skips the backbone: the features stage's library function runs with the stand-in network,
and then every stage after `features` runs as its own process with the command both engines run
(``zsseg.pipeline.stage_commands``). Per stage it records the wall time, the peak RSS, the bytes the
process read and wrote through read and write calls while it worked (the caches dominate: imports and
the stand-in's files are a few MB), and the size of what it wrote. It fits each figure against F with a
least-squares line and prints the predicted cost of a full cell and of the preset's grid (table.k_values x
table.seeds: VOC's and Context's 15 cells, 5 K x 3 seeds, the K = 10 cell, the largest, counted 15 times: an
upper bound; COCO-Stuff's 3, K = 15 x 3 seeds) on this machine.
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
from zsseg.datasets import cocostuff, context, voc  # noqa: E402
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
VOC_IMAGE_SIZES = {(375, 500): 0.40, (333, 500): 0.20, (500, 375): 0.12, (500, 333): 0.08, (366, 500): 0.07,
                   (281, 500): 0.05, (400, 500): 0.04, (500, 500): 0.04}
# COCO's images are at most 640 px on the long side, "mostly around 640x480" (github.com/xyfJASON/datasetx,
# docs/COCO.md). Assumed, not published: which other sizes, and how often each is drawn.
COCO_ASSUMED_IMAGE_SIZES = {(480, 640): 0.40, (427, 640): 0.15, (640, 480): 0.10, (426, 640): 0.08,
                            (640, 427): 0.06, (428, 640): 0.05, (425, 640): 0.04, (360, 640): 0.04,
                            (424, 640): 0.03, (640, 426): 0.03, (640, 640): 0.02}
# Images per class of COCO-Stuff 10K (10,000 COCO images, v1.1: the same 171 used classes as COCO-Stuff 164K),
# the "Images" column of github.com/dataset-ninja/cocostuff10k stats/class_balance.json (commit f620382).
# No per-class image counts of COCO-Stuff 164K's train2017 were found; these shares stand in for them. The
# two thing counts of train2017 found published agree: person in 64,115 of its 118,287 images (54.2%; here
# 54.9%) and car in 12,251 (10.4%; here 10.3%) (github.com/potterhsu/easy-faster-rcnn.pytorch, README).
COCOSTUFF10K_IMAGES = {
    "person": 5492, "bicycle": 253, "car": 1032, "motorcycle": 299, "airplane": 289, "bus": 336, "train": 281,
    "truck": 503, "boat": 245, "traffic light": 371, "fire hydrant": 145, "stop sign": 139, "parking meter": 58,
    "bench": 477, "bird": 250, "cat": 360, "dog": 380, "horse": 244, "sheep": 130, "cow": 174, "elephant": 203,
    "bear": 72, "zebra": 147, "giraffe": 216, "backpack": 334, "umbrella": 324, "handbag": 444, "tie": 85,
    "suitcase": 202, "frisbee": 176, "skis": 242, "snowboard": 136, "sports ball": 269, "kite": 189,
    "baseball bat": 193, "baseball glove": 136, "skateboard": 293, "surfboard": 267, "tennis racket": 267,
    "bottle": 682, "wine glass": 189, "cup": 740, "fork": 266, "knife": 338, "spoon": 273, "bowl": 597, "banana": 183,
    "apple": 126, "sandwich": 197, "orange": 116, "broccoli": 114, "carrot": 94, "hot dog": 91, "pizza": 270,
    "donut": 116, "cake": 230, "chair": 1052, "couch": 361, "potted plant": 391, "bed": 310, "dining table": 1011,
    "toilet": 280, "tv": 412, "laptop": 281, "mouse": 163, "remote": 192, "keyboard": 177, "cell phone": 213,
    "microwave": 124, "oven": 223, "toaster": 22, "sink": 378, "refrigerator": 188, "book": 428, "clock": 345,
    "vase": 272, "scissors": 63, "teddy bear": 169, "hair drier": 8, "toothbrush": 67, "banner": 274, "blanket": 49,
    "branch": 54, "bridge": 101, "building-other": 1610, "bush": 673, "cabinet": 337, "cage": 33, "cardboard": 82,
    "carpet": 304, "ceiling-other": 651, "ceiling-tile": 48, "cloth": 161, "clothes": 108, "clouds": 1524,
    "counter": 371, "cupboard": 272, "curtain": 382, "desk-stuff": 189, "dirt": 579, "door-stuff": 539, "fence": 939,
    "floor-marble": 50, "floor-other": 502, "floor-stone": 70, "floor-tile": 389, "floor-wood": 440, "flower": 180,
    "fog": 35, "food-other": 208, "fruit": 73, "furniture-other": 639, "grass": 1761, "gravel": 211,
    "ground-other": 745, "hill": 270, "house": 415, "leaves": 114, "light": 632, "mat": 67, "metal": 273,
    "mirror-stuff": 269, "moss": 13, "mountain": 211, "mud": 58, "napkin": 64, "net": 148, "paper": 234,
    "pavement": 1054, "pillow": 26, "plant-other": 718, "plastic": 120, "platform": 161, "playingfield": 443,
    "railing": 405, "railroad": 157, "river": 99, "road": 1313, "rock": 262, "roof": 185, "rug": 242, "salad": 30,
    "sand": 322, "sea": 496, "shelf": 272, "sky-other": 2230, "skyscraper": 76, "snow": 415, "solid-other": 16,
    "stairs": 180, "stone": 130, "straw": 76, "structural-other": 1027, "table": 580, "tent": 58,
    "textile-other": 242, "towel": 134, "tree": 3008, "vegetable": 78, "wall-brick": 333, "wall-concrete": 209,
    "wall-other": 2450, "wall-panel": 107, "wall-stone": 133, "wall-tile": 299, "wall-wood": 227, "water-other": 392,
    "waterdrops": 18, "window-blind": 205, "window-other": 824, "wood": 300}
COCOSTUFF10K_TOTAL = 10000
# COCO-Stuff's 91 stuff classes, PNG indices 91..181 (labels.txt's ids 92..182), all used: laid as bands.
COCOSTUFF_STUFF = cocostuff.ANNOTATION_NAMES[91:]
# How far apart the class clusters are, against the noise of each feature pixel.
CLUSTER_SPREAD, FEATURE_NOISE, EMBEDDING_NOISE, EMBEDDING_DIM, LATENT_DIM = 0.5, 1.0, 0.05, 300, 4
# The stand-in's colours: 6 levels per channel, 42 apart, so a 4 x 4 block of one class (noise at most +-8 per
# channel, IMAGE_NOISE) is always nearest its own colour: 216 colours, for COCO-Stuff's 171 classes.
PALETTE_LEVELS, IMAGE_NOISE = (21, 63, 105, 147, 189, 231), 8
STAND_IN, MAX_CLASSES = "stand_in", len(PALETTE_LEVELS) ** 3


@dataclass(frozen=True)
class DatasetShape:
    preset: str
    class_names: tuple[str, ...]
    unseen_order: tuple[str, ...]
    train_images: int                 # the dataset's train split, before the dev split is held out of it
    val_images: int
    image_shares: dict[str, float]    # the share of images that hold an object of each class
    stuff: tuple[str, ...] = field(default=())   # scene classes, laid as bands (with a share: each in its share)
    image_sizes: dict[tuple[int, int], float] = field(default_factory=lambda: VOC_IMAGE_SIZES)  # (h, w): share


def _voc_shares(names: tuple[str, ...]) -> dict[str, float]:
    return {name: VOC2012_TRAINVAL_IMAGES[name] / VOC2012_TRAINVAL_TOTAL for name in names
            if name in VOC2012_TRAINVAL_IMAGES}


SHAPES = {
    "voc": DatasetShape("voc", voc.CLASS_NAMES, tuple(resolve_class_names(voc.UNSEEN_ORDER, voc.CLASS_NAMES, "VOC")),
                        10582, 1449, _voc_shares(voc.CLASS_NAMES)),
    "context": DatasetShape("context", CONTEXT_CLASS_NAMES, context.UNSEEN_ORDER, 4998, 5105, {
        **{name: CONTEXT_OTHER_OBJECT_SHARE for name in CONTEXT_CLASS_NAMES[1:] if name not in CONTEXT_STUFF},
        **_voc_shares(CONTEXT_CLASS_NAMES), **CONTEXT_ASSUMED_SHARES}, CONTEXT_STUFF),
    "cocostuff": DatasetShape("cocostuff", cocostuff.CLASS_NAMES, cocostuff.UNSEEN, 118287, 5000,
                              {name: COCOSTUFF10K_IMAGES[name] / COCOSTUFF10K_TOTAL for name in cocostuff.CLASS_NAMES},
                              COCOSTUFF_STUFF, COCO_ASSUMED_IMAGE_SIZES),
}


def unlabelled_share(shape: DatasetShape, k: int) -> float:
    """The share of training images holding one of the first K unseen classes, classes independent."""
    return 1.0 - float(np.prod([1.0 - shape.image_shares[name] for name in shape.unseen_order[:k]]))


def palette(count: int) -> np.ndarray:
    """``count`` colours 42 levels apart on each channel: the nearest one survives the image noise."""
    levels = np.array(PALETTE_LEVELS)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    if count > len(grid):
        raise ValueError(f"{count} classes need more than {len(grid)} colours")
    return grid[np.random.default_rng(0).permutation(len(grid))[:count]].astype(np.uint8)


def synthetic_label(shape: DatasetShape, rng: np.random.Generator, forced_unseen: bool | None,
                    unseen: set[int]) -> np.ndarray:
    """A label map: scene bands (Context, COCO-Stuff), then one rectangle per present object class, 255 borders."""
    sizes = shape.image_sizes
    height, width = list(sizes)[rng.choice(len(sizes), p=list(sizes.values()))]
    names = shape.class_names
    label = np.zeros((height, width), dtype=np.uint8)
    stuff = [names.index(name) for name in shape.stuff]
    if stuff and all(name in shape.image_shares for name in shape.stuff):
        # COCO-Stuff: each stuff class in its share of images, independently; full-width bands of at least a
        # row each, which one rectangle (at most 60% wide) never covers whole: each stays in the label unless
        # several rectangles together cover a thin band.
        bands = [index for index in stuff if rng.random() < shape.image_shares[names[index]]]
        if forced_unseen is not None:
            bands = [index for index in bands if index not in unseen]
        if not bands:
            bands = [int(rng.choice([index for index in stuff if index not in unseen]))]
        bands = rng.permutation(bands)
        edges = np.sort(rng.choice(np.arange(1, height), size=len(bands) - 1, replace=False))
    elif stuff:
        bands = rng.choice(stuff, size=rng.integers(2, 4), replace=False)
        edges = np.sort(rng.integers(0, height, size=len(bands) - 1))
    if stuff:
        for band, start, stop in zip(bands, [0, *edges], [*edges, height]):
            label[start:stop] = band
    objects = [index for index, name in enumerate(names)
               if name in shape.image_shares and name not in shape.stuff and rng.random() < shape.image_shares[name]]
    if forced_unseen is not None:
        objects = [index for index in objects if index not in unseen]
        if forced_unseen:
            objects.append(int(rng.choice(sorted(unseen))))
    if not objects:
        seen_objects = [i for i, name in enumerate(names)
                        if name in shape.image_shares and name not in shape.stuff and i not in unseen]
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
            image = colours[painted] + rng.integers(-IMAGE_NOISE, IMAGE_NOISE + 1, size=(*label.shape, 3))
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


def preset_grid(shape: DatasetShape) -> tuple[list[int], int]:
    """The preset's table.k_values and its number of cells (K values x seeds)."""
    table = preset_params(shape, 1, 0)["table"]
    return list(table["k_values"]), len(table["k_values"]) * len(table["seeds"])


def report(cells: list[dict], shape: DatasetShape, k: int) -> str:
    gigabyte = 1e9
    k_values, grid = preset_grid(shape)
    bound = ", an upper bound" if len(k_values) > 1 else ""
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
              f"{grid}-cell grid ({grid} x this K = {k} cell{bound}): {grid * after['seconds'] / 3600:.1f} h, "
              f"{grid * after['read'] / 1e12:.2f} TB read, {grid * totals['output_bytes'] / 1e12:.2f} TB on disk"]
    return "\n".join(lines)


def network_seconds_per_image(shape: DatasetShape) -> tuple[str, float]:
    """The preset's real network (random weights), timed over two images of the shape's most common size one
    at a time on this machine's CPU with the preset's threads: the work evaluate does per val or dev image on
    top of the stand-in's."""
    params = parse_params(preset_params(shape, 10, 0))
    torch.set_num_threads(params.threads)
    backbone = params.backbone
    network = SegmentationNetwork(backbone.arch, 2, backbone.feature_dim, backbone.aspp_rates).eval()
    image = torch.rand(1, 3, *max(shape.image_sizes, key=shape.image_sizes.get)) * 255
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
    parser.add_argument("--k", type=int, default=None, help="unseen classes (default: the largest of the preset's "
                                                             "table.k_values, the largest cell: 10; COCO-Stuff 15)")
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
    k_values, _ = preset_grid(shape)
    if args.k is None:
        args.k = max(k_values)
    share = args.unlabelled_share
    print(f"{shape.preset}: unlabelled share of train images per K from the class shares: "
          + ", ".join(f"K={k} {unlabelled_share(shape, k):.2f}" for k in k_values)
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
