"""What the zero-shot method stages read of a run's caches: the seen-class samples from samples.h5 (drawn once,
by the samples stage) and the mining pool from pool.h5, never a pixel of labelled.h5. Stripped of its pixels,
labelled.h5 still gives every method the same bytes; the samples stage, which does read them, fails on it
(the control)."""

import shutil

import h5py
import pytest

from conftest import run_stages_in_process, tiny_params, write_params
from test_leak_canary import digest_file
from zsseg.datasets.demo import write_demo_dataset
from zsseg.feature_cache import LABELLED_FILE
from zsseg.methods import METHODS, results

pytestmark = pytest.mark.pipeline
ZERO_SHOT_STAGES = tuple(dict.fromkeys(method.stage for method in METHODS if method.zero_shot))


def method_outputs(data, rounds) -> dict[str, str]:
    return {str(path.relative_to(data)): digest_file(path) for result in results(rounds)
            if result.method.zero_shot for path in sorted((data / result.directory).iterdir())}


def strip_pixels(path) -> None:
    """labelled.h5 with its attributes, ids, shapes and offsets, and no dataset of its pixels."""
    stripped = path.with_suffix(".stripped")
    with h5py.File(path, "r") as source, h5py.File(stripped, "w") as target:
        target.attrs.update(source.attrs)
        for name in ("ids", "feature_shapes", "image_offsets"):
            source.copy(name, target)
        assert {"pixels", "feature_labels"} <= set(source) - set(target)
    stripped.replace(path)


def test_the_methods_read_the_samples_and_the_pool_and_no_labelled_pixel(tmp_path):
    root = tmp_path / "dataset"
    write_demo_dataset(root, train_images=24, val_images=4, image_size=64, min_objects=2, max_objects=3, seed=11,
                       dev_images=4)
    params = write_params(tmp_path / "params.yaml", tiny_params(**{
        "dataset.name": "folder", "dataset.root": str(root), "dataset.unseen": 3, "recursion.threshold": 0.05,
        "classifier.learning_rate": 0.001}))
    data = tmp_path / "data"
    run_stages_in_process(params, data, ("prepare", "embed", "encode", "backbone", "features", "samples",
                                         *ZERO_SHOT_STAGES))
    before = method_outputs(data, [1])
    assert "rounds/1/pseudo_features.h5" in before and "self_training/classifier.pt" in before
    strip_pixels(data / "features" / LABELLED_FILE)
    for result in results([1]):
        shutil.rmtree(data / result.directory.split("/")[0], ignore_errors=True)
    run_stages_in_process(params, data, ZERO_SHOT_STAGES)
    assert method_outputs(data, [1]) == before
    with pytest.raises(KeyError):
        run_stages_in_process(params, data, ("samples",))
