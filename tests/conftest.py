import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _shared_directory() -> Path:
    """The read-only test data beside the checkout (``../shared``), also found from a clone elsewhere."""
    candidates = [Path(os.environ["ZSSEG_SHARED"])] if "ZSSEG_SHARED" in os.environ else []
    candidates += [parent / "shared" for parent in PROJECT_ROOT.parents] + [Path("/work/shared")]
    for candidate in candidates:
        if (candidate / "data" / "zs3net_word2vec").is_dir():
            return candidate
    raise RuntimeError(f"test data not found: looked for shared/data/zs3net_word2vec in {candidates}; "
                       f"set ZSSEG_SHARED to the shared directory")


SHARED = _shared_directory()


def write_folder_dataset(root: Path, class_names, splits: dict, unseen_order=None, suffix=".png") -> Path:
    """Write a folder-format dataset; ``splits`` maps split -> {id: (image HxWx3, label HxW)}."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("\n".join(class_names) + "\n")
    if unseen_order is not None:
        (root / "unseen.txt").write_text("\n".join(unseen_order) + "\n")
    for split, items in splits.items():
        (root / f"{split}.txt").write_text("\n".join(items) + "\n")
        for image_id, (image, label) in items.items():
            Image.fromarray(image).save(root / "images" / f"{image_id}{suffix}")
            Image.fromarray(label, mode="L").save(root / "labels" / f"{image_id}.png")
    return root


@pytest.fixture
def small_dataset(tmp_path):
    """Three classes, two images per split, 32x32."""
    rng = np.random.default_rng(0)
    splits = {}
    for split in ("train", "val"):
        items = {}
        for index in range(2):
            image = rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
            label = np.zeros((32, 32), dtype=np.uint8)
            label[4:12, 4:12] = 1
            label[20:28, 20:28] = 2
            label[0, :] = 255
            items[f"{split}{index}"] = (image, label)
        splits[split] = items
    return write_folder_dataset(tmp_path / "dataset", ["background", "cat", "dog"], splits, ["dog"])


def write_caches_by_hand(directory: Path, images: list, class_names: list[str], unseen: list[int],
                         precision: str = "float16", stride: int = 8, params_hash: str = "abc"):
    """labelled.h5 and pool.h5 of hand-made images, every pixel kept: ``images`` are (id, features (h, w, D),
    feature labels (h, w), or None for an unlabelled image). Returns the caches as the stages open them."""
    from zsseg.feature_cache import LABELLED_FILE, POOL_FILE, FeatureCache, FeatureCacheWriter, TrainingCaches

    directory.mkdir(parents=True, exist_ok=True)
    dimension = images[0][1].shape[2]
    attributes = {"params_hash": params_hash, "stride": stride, "feature_dim": dimension, "class_names": class_names,
                  "unseen": unseen, "label_purity": 0.5, "share": 1.0}
    with (FeatureCacheWriter(directory / LABELLED_FILE, dimension, precision, True, attributes) as labelled,
          FeatureCacheWriter(directory / POOL_FILE, dimension, precision, False, attributes) as pool):
        for image_id, features, labels in images:
            shape = features.shape[:2]
            rows = features.reshape(-1, dimension).astype(np.float32)
            pixels = np.arange(rows.shape[0])
            if labels is None:
                pool.write(image_id, rows, pixels, shape)
            else:
                labelled.write(image_id, rows, pixels, shape, labels.reshape(-1))
    return TrainingCaches(FeatureCache(directory / LABELLED_FILE), FeatureCache(directory / POOL_FILE))


def majority_by_hand(label: np.ndarray, stride: int, purity: float = 0.0) -> np.ndarray:
    """Each whole stride x stride block's most frequent value (the smaller one on a tie), counted pixel by
    pixel; 255 where it covers less than ``purity`` of the block. An independent reference for block_labels."""
    rows, columns = label.shape[0] // stride, label.shape[1] // stride
    expected = np.full((rows, columns), 255, dtype=label.dtype)
    for row in range(rows):
        for column in range(columns):
            block = label[row * stride:(row + 1) * stride, column * stride:(column + 1) * stride].ravel().tolist()
            most = max(block.count(value) for value in set(block))
            if most >= purity * stride * stride:
                expected[row, column] = min(value for value in set(block) if block.count(value) == most)
    return expected


def tiny_params(**overrides) -> dict:
    """params.yaml shrunk to a pipeline that runs in seconds; ``overrides`` use dotted keys."""
    import yaml

    data = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    tiny = {
        "device": "cpu",
        "embed.source": "glove",
        "demo.train_images": 40, "demo.val_images": 8, "demo.dev_images": 8, "demo.image_size": 64,
        "backbone.epochs": 2, "backbone.batch_size": 8,
        "features.batch_size": 16,
        "generator.steps": 15, "generator.samples_per_class": 16, "generator.real_features_per_class": 100,
        "classifier.epochs": 20, "classifier.learning_rate": 0.01, "classifier.generated_per_class": 50,
        # A barely trained network: unseen classes need a heavier weight (and torch's initialisation of
        # the generator) to be predicted at all, and a low threshold to be mined, so that the recursive
        # round has pseudo-features to work with.
        "classifier.unseen_weight": 2.0, "generator.init": "pytorch",
        "recursion.rounds": {"1": 0}, "recursion.threshold": 0.1, "recursion.min_count": 1,
        "recursion.generator_steps": 5, "recursion.per_class_cap": 100,
        "evaluate.batch_size": 16, "report.grid_images": 2, "table.k_values": [2, 4], "table.seeds": [0, 1],
    }
    tiny.update(overrides)
    for key, value in tiny.items():
        node = data
        *parents, last = key.split(".")
        for name in parents:
            node = node[name]
        node[last] = value
    return data


def write_params(path: Path, data: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def mining_dataset(workdir: Path, **overrides) -> tuple[Path, Path]:
    """A tiny demo dataset (``workdir/dataset``) and params for it (``workdir/params.yaml``, with
    ``overrides``) on which a barely trained round-0 classifier still predicts unseen classes on some pixels
    of the unlabelled images, so that the recursive rounds mine pseudo-features."""
    from zsseg.datasets.demo import write_demo_dataset

    root = workdir / "dataset"
    write_demo_dataset(root, train_images=24, val_images=4, image_size=64, min_objects=2, max_objects=3, seed=11,
                       dev_images=4)
    params = write_params(workdir / "params.yaml", tiny_params(**{
        "dataset.name": "folder", "dataset.root": str(root), "recursion.threshold": 0.05,
        "classifier.learning_rate": 0.001, **overrides}))
    return root, params


def run_stages_in_process(params_path: Path, data: Path, names: tuple[str, ...] | None = None) -> None:
    """The pipeline's stages up to evaluate (not demo, or only ``names``), in one process, on a run in
    ``data``: the commands both engines run (zsseg.pipeline), with ``--params params_path``."""
    import importlib

    import yaml

    from zsseg.pipeline import RUN, SHARED, STAGES, stage_commands

    names = names or tuple(entry.name for entry in STAGES if entry.scope in (SHARED, RUN) and entry.name != "demo")
    for module, arguments in stage_commands(yaml.safe_load(params_path.read_text()), str(data), names):
        importlib.import_module(module).main(["--params", str(params_path), *arguments])


def pytest_collection_modifyitems(items):
    """A test that uses the tiny pipelines runs whole pipelines: `make test-fast` leaves it out."""
    for item in items:
        if "tiny_runs" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.pipeline)


# Tiny pipelines shared by the pipeline, determinism and prediction tests (tests/pipeline_runs.py).
# They start in the background with the session's first test, whenever a collected test needs them: most
# of their time is single-threaded process start-up, so they overlap with the tests before their first
# user instead of waiting for it. The DVC and Snakemake chains also run beside each other, for the same
# reason.
@pytest.fixture(scope="session", autouse=True)
def tiny_runs_started(request, tmp_path_factory):
    from concurrent.futures import ThreadPoolExecutor

    from pipeline_runs import dvc_chain, snakemake_chain

    if not any("tiny_runs" in item.fixturenames for item in request.session.items):
        yield []
        return
    base = tmp_path_factory.mktemp("pipelines")
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="tiny-runs") as pool:
        yield [pool.submit(chain, base) for chain in (dvc_chain, snakemake_chain)]


@pytest.fixture(scope="session")
def tiny_runs(tiny_runs_started) -> dict:
    return {name: path for chain in tiny_runs_started for name, path in chain.result().items()}


@pytest.fixture(scope="session")
def dvc_run(tiny_runs) -> Path:
    return tiny_runs["dvc"]


@pytest.fixture(scope="session")
def snakemake_run(tiny_runs) -> Path:
    return tiny_runs["snakemake"]
