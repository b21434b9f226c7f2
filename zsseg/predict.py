"""Open-vocabulary inference from a trained run: the user's images, the user's class names.

A run is a data directory as the pipeline writes it (``backbone/``, ``features/``, ``rounds/R/``,
and ``embeddings.npz`` there or one level up, as in the K grid's ``data/k<K>/``). For the run's own
class list the round's trained classifier is used as it is. For any other list the classifier rows
of names the run knows are kept, and a row is fitted for every new name on real cached features of
the run's seen classes plus generated features of the other names (seconds, not a retraining).
``refit`` fits every row instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from zsseg.classifier import CLASSIFIER_FILE, load_classifier  # noqa: E402
from zsseg.atomic import atomic_path  # noqa: E402
from zsseg.classifier import is_masked, train_classifier  # noqa: E402
from zsseg.config import Params  # noqa: E402
from zsseg.datasets.folder import IMAGE_SUFFIXES, DatasetError, check_image  # noqa: E402
from zsseg.dense_prediction import TestTimeAugmentation, dense_labels  # noqa: E402
from zsseg.embeddings import class_embeddings  # noqa: E402
from zsseg.errors import InputError  # noqa: E402
from zsseg.feature_cache import LABELLED_FILE, FeatureCache  # noqa: E402
from zsseg.feature_extraction import network_features  # noqa: E402
from zsseg.generator import GENERATOR_FILE, generate_features, load_generator  # noqa: E402
from zsseg.network import NETWORK_FILE, SegmentationNetwork  # noqa: E402
from zsseg.report import class_palette  # noqa: E402
from zsseg.runtime import SeedPurpose, derive_seed  # noqa: E402
from zsseg.sampling import sample_class_features  # noqa: E402
from zsseg.checkpoints import load_weights_only  # noqa: E402


class PredictError(InputError):
    """Bad input to prediction: the message names the class name, file or run."""


@dataclass(frozen=True)
class TrainedRun:
    """The files of one trained round and the run it belongs to."""

    round_directory: Path
    root: Path
    embeddings_path: Path
    class_names: list[str]
    unseen: list[int]

    @property
    def network_path(self) -> Path:
        return self.root / "backbone" / NETWORK_FILE

    @property
    def labelled_cache(self) -> Path:
        return self.root / "features" / LABELLED_FILE


def find_run(run: str | None, data: str | Path = "data") -> TrainedRun:
    """``run``: None (the last round under ``data/rounds``), a round number, or a round directory."""
    data = Path(data)
    if run is None:
        rounds = sorted((int(path.name) for path in (data / "rounds").glob("[0-9]*")
                         if path.name.isdigit() and (path / CLASSIFIER_FILE).is_file()), reverse=True)
        if not rounds:
            raise PredictError(f"{data / 'rounds'}: no trained round; run `dvc repro` first, or pass --run")
        directory = data / "rounds" / str(rounds[0])
    elif run.isdigit():
        directory = data / "rounds" / run
    else:
        directory = Path(run)
    missing = [name for name in (CLASSIFIER_FILE, GENERATOR_FILE) if not (directory / name).is_file()]
    if missing:
        raise PredictError(f"--run {directory}: not a trained round (no {' or '.join(missing)}); expected a "
                           f"directory such as data/rounds/1 written by the round stages")
    root = directory.parent.parent if directory.parent.name == "rounds" else directory.parent
    # A single run holds its embeddings; a grid cell (data/k<K>/s<seed>) finds the shared ones above it.
    candidates = [root / "embeddings.npz", *(parent / "embeddings.npz" for parent in root.parents)]
    embeddings = next((path for path in candidates if path.is_file()), None)
    for required in (root / "backbone" / NETWORK_FILE, root / "features" / LABELLED_FILE, embeddings):
        if required is None or not required.is_file():
            raise PredictError(f"--run {directory}: the run has no {required or candidates[0]}; "
                               f"run the pipeline that made this round to the end")
    checkpoint = load_weights_only(directory / CLASSIFIER_FILE)
    return TrainedRun(directory, root, embeddings, list(checkpoint["class_names"]), list(checkpoint["unseen"]))


def parse_class_names(text: str, source: str = "--classes") -> list[str]:
    """Names separated by commas or new lines; empty lists and duplicates (in any case) are refused."""
    names = [name.strip() for name in re.split(r"[,\n]", text) if name.strip()]
    if not names:
        raise PredictError(f"{source}: the class list is empty; give names such as 'background, cat, dog'")
    if len(names) > 255:
        raise PredictError(f"{source}: {len(names)} names; the label PNG holds at most 255 classes")
    first: dict[str, str] = {}
    for name in names:
        if name.lower() in first:
            raise PredictError(f"{source}: class name {name!r} is given twice"
                               + ("" if first[name.lower()] == name else f" (as {first[name.lower()]!r})"))
        first[name.lower()] = name
    return names


def find_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Image files, and the images (.jpg, .jpeg, .png) of directories; every one is decoded up front."""
    images: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(path for path in item.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise PredictError(f"{item}: no image (.jpg, .jpeg, .png) in this directory")
            images += found
        elif item.is_file():
            images.append(item)
        else:
            raise PredictError(f"{item}: no such image or directory")
    if not images:
        raise PredictError("no image given")
    for path in images:
        try:
            check_image(path)
        except DatasetError as error:
            raise PredictError(str(error)) from error
    return images


def build_classifier(run: TrainedRun, names: list[str], params: Params, device: torch.device, refit: bool,
                     log: Callable[[str], None]) -> nn.Linear:
    """Classifier weights for exactly ``names`` (see the module docstring)."""
    trained = load_classifier(run.round_directory)
    if names == run.class_names and not refit:
        log(f"the run's own {len(names)} classes: its trained classifier is used as it is")
        return trained
    try:
        vectors = torch.from_numpy(class_embeddings(names, *_embedding_source(run, params)))
    except ValueError as error:
        raise PredictError(f"--classes: {error}") from error
    known = {name: index for index, name in enumerate(run.class_names)}
    # A class the run masked (background, with dataset.background: ignore) stays masked, --refit or not: the run
    # never saw its pixels, and it is never predicted.
    masked = [position for position, name in enumerate(names) if name in known and is_masked(trained, known[name])]
    seen = {position: known[name] for position, name in enumerate(names)
            if name in known and known[name] not in run.unseen and position not in masked}
    cache = FeatureCache(run.labelled_cache)
    if cache.class_names != run.class_names:
        raise PredictError(f"{run.labelled_cache}: cached for classes {cache.class_names}, the round has "
                           f"{run.class_names}; rerun the pipeline")
    real = sample_class_features(cache, sorted(set(seen.values())), params.generator.real_features_per_class,
                                 derive_seed(params.seed, SeedPurpose.PREDICT_SAMPLES),
                                 batch_size=params.evaluate.batch_size)
    features = {position: real[index] for position, index in seen.items() if index in real}
    others = [position for position in range(len(names)) if position not in features and position not in masked]
    features |= generate_features(load_generator(run.round_directory, vectors), vectors, others,
                                  params.classifier.generated_per_class,
                                  derive_seed(params.seed, SeedPurpose.PREDICT_FEATURES),
                                  device, "predict")
    fixed = {} if refit else {position: (trained.weight[known[name]].detach(), trained.bias[known[name]].detach())
                              for position, name in enumerate(names) if name in known and position not in masked}
    new = [name for name in names if name not in known]
    log(f"fitting {'every row' if refit else f'rows for {len(new)} new name(s): {new}'} on real features of "
        f"{len(features) - len(others)} seen and generated features of {len(others)} other classes")
    classifier, _ = train_classifier(features, len(names), params.classifier,
                                     derive_seed(params.seed, SeedPurpose.PREDICT_CLASSIFIER), device, "predict",
                                     others, fixed, masked)
    return classifier


def _embedding_source(run: TrainedRun, params: Params) -> tuple[str, str | None]:
    archive = np.load(run.embeddings_path)
    source = str(archive["source"])
    return source, params.embed.path if source == "word2vec" else None


@torch.no_grad()
def segment(network: SegmentationNetwork, classifier: nn.Linear, image: np.ndarray, device: torch.device,
            use_mixed_precision: bool, augmentation: TestTimeAugmentation | None = None) -> np.ndarray:
    """Class indices (H, W) of one image at its own size, as the evaluate stage classifies it (dense_labels,
    or with ``augmentation``, its test-time augmentation): the run's own classifier reproduces its prediction."""
    if augmentation is not None:
        return augmentation.labels([classifier], [image], "predict")[0][0].numpy()
    features = network_features(network, [image], device, use_mixed_precision)
    return dense_labels(classifier, torch.from_numpy(features), image.shape[:2], device, "predict")[0].numpy()


def class_fractions(labels: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    counts = np.bincount(labels.reshape(-1), minlength=len(names))
    return {name: float(count) / labels.size for name, count in zip(names, counts)}


def write_overlay(image: np.ndarray, labels: np.ndarray, names: Sequence[str], fractions: dict[str, float],
                  path: Path) -> None:
    """The image with the class colours blended over it, and a legend of the classes present."""
    palette = class_palette(len(names))
    blended = (0.45 * image + 0.55 * palette[labels]).astype(np.uint8)
    height, width = labels.shape
    figure, axis = plt.subplots(figsize=(max(4.0, width / 100), max(3.0, height / 100) + 0.9))
    axis.imshow(blended, interpolation="nearest")
    axis.set_axis_off()
    present = [index for index, name in enumerate(names) if fractions[name] > 0]
    handles = [matplotlib.patches.Patch(color=palette[index] / 255.0,
                                        label=f"{names[index]} {100 * fractions[names[index]]:.1f}%")
               for index in sorted(present, key=lambda index: -fractions[names[index]])]
    columns = 2
    figure.legend(handles=handles, loc="lower center", ncol=columns, fontsize=7, frameon=False)
    figure.tight_layout(rect=(0, 0.05 * -(-len(handles) // columns) + 0.02, 1, 1))
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)


def fraction_table(results: dict[str, dict[str, float]]) -> str:
    """Per image, the classes it contains, largest first, as percentages."""
    lines = []
    for image, fractions in results.items():
        lines.append(image)
        for name, fraction in sorted(fractions.items(), key=lambda item: -item[1]):
            if fraction > 0:
                lines.append(f"  {name:<28} {100 * fraction:6.2f}%")
    return "\n".join(lines)


def write_prediction(directory: Path, stem: str, image_path: Path, image: np.ndarray, labels: np.ndarray,
                     names: Sequence[str], run: TrainedRun) -> dict[str, float]:
    fractions = class_fractions(labels, names)
    with atomic_path(directory / f"{stem}_labels.png") as temporary:
        Image.fromarray(labels.astype(np.uint8), mode="L").save(temporary, format="PNG")
    with atomic_path(directory / f"{stem}_overlay.png") as temporary:
        write_overlay(image, labels, names, fractions, temporary)
    with atomic_path(directory / f"{stem}.json") as temporary:
        temporary.write_text(json.dumps({"image": str(image_path), "run": str(run.round_directory),
                                         "classes": list(names), "fractions": fractions}, indent=2) + "\n")
    return fractions
