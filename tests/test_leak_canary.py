"""Leak canary: no training stage may learn *which* unseen class a training pixel belongs to.

The ZS3Net protocol may use *that* a pixel is unseen (to drop images and ignore pixels). So if every
unseen label of the training split is rewritten to one unseen id, or the unseen ids are permuted,
every training output (backbone, feature cache, generator, classifier, pseudo-features) must stay
bit-identical. A control changes a *seen* label and must change the outputs, so the check can fail.
"""

import hashlib
import shutil

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_stages_in_process, tiny_params, write_params
from zsseg.datasets.demo import write_demo_dataset

pytestmark = pytest.mark.pipeline

UNSEEN_K = 3


def digest_tensors(tensors: dict) -> dict:
    return {key: hashlib.sha256(value.detach().cpu().numpy().tobytes()).hexdigest() for key, value in tensors.items()}


def digest_h5(path, skip=()) -> dict:
    def content(dataset) -> bytes:
        values = dataset[()]
        if values.dtype == object:  # strings: hash their text, not the object pointers
            return "\n".join(v.decode() if isinstance(v, bytes) else str(v) for v in values).encode()
        return values.tobytes()

    with h5py.File(path, "r") as handle:
        return {name: hashlib.sha256(content(handle[name])).hexdigest() for name in handle if name not in skip}


def training_outputs(workdir, params_path) -> dict:
    out = workdir / "out"
    shutil.rmtree(out, ignore_errors=True)
    run_stages_in_process(params_path, out, ("prepare", "embed", "backbone", "features", "round_0",
                                             "recursive_round", "self_training"))
    result = {"backbone": digest_tensors(torch.load(out / "backbone" / "network.pt", weights_only=False)["state_dict"])}
    # The train cache keeps full-resolution labels too: they must also be identical (unseen -> 255).
    result["train_cache"] = digest_h5(out / "features" / "train.h5")
    for r in ("0", "1"):
        result[f"generator_{r}"] = digest_tensors(torch.load(out / "rounds" / r / "generator.pt")["state_dict"])
        result[f"classifier_{r}"] = digest_tensors(
            {k: v for k, v in torch.load(out / "rounds" / r / "classifier.pt").items() if torch.is_tensor(v)})
    result["self_training_classifier"] = digest_tensors(
        {k: v for k, v in torch.load(out / "self_training" / "classifier.pt").items() if torch.is_tensor(v)})
    result["pseudo_features"] = digest_h5(out / "rounds" / "1" / "pseudo_features.h5")
    return result


def relabel_train(root, mapping: dict) -> int:
    """Apply ``mapping`` to every training label file; returns how many pixels changed."""
    table = np.arange(256, dtype=np.uint8)
    for source, target in mapping.items():
        table[source] = target
    changed = 0
    for image_id in (root / "train.txt").read_text().split():
        path = root / "labels" / f"{image_id}.png"
        label = np.array(Image.open(path))
        relabelled = table[label]
        changed += int((relabelled != label).sum())
        Image.fromarray(relabelled, mode="L").save(path)
    return changed


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("canary")
    root = workdir / "dataset"
    write_demo_dataset(root, train_images=24, val_images=4, image_size=64, min_objects=2, max_objects=3, seed=11)
    params = write_params(workdir / "params.yaml", tiny_params(**{
        "dataset.name": "folder", "dataset.root": str(root), "dataset.unseen": UNSEEN_K,
        # A barely trained round-0 classifier still predicts unseen classes on some unlabelled
        # pixels, so round 1 mines pseudo-features and the canary covers them.
        "recursion.threshold": 0.05, "classifier.learning_rate": 0.001}))
    classes = (root / "classes.txt").read_text().split("\n")
    unseen = [classes.index(name) for name in (root / "unseen.txt").read_text().split("\n")[:UNSEEN_K]]
    pristine = workdir / "pristine"
    shutil.copytree(root, pristine)
    baseline = training_outputs(workdir, params)
    return workdir, root, pristine, params, unseen, baseline


def reset(root, pristine):
    shutil.rmtree(root)
    shutil.copytree(pristine, root)


def test_unseen_ids_collapsed_to_one(canary):
    workdir, root, pristine, params, unseen, baseline = canary
    reset(root, pristine)
    assert relabel_train(root, {u: unseen[0] for u in unseen[1:]}) > 0
    assert training_outputs(workdir, params) == baseline


def test_unseen_ids_permuted(canary):
    workdir, root, pristine, params, unseen, baseline = canary
    reset(root, pristine)
    rotated = unseen[1:] + unseen[:1]
    assert relabel_train(root, dict(zip(unseen, rotated))) > 0
    assert training_outputs(workdir, params) == baseline


def test_pseudo_features_exist_so_the_canary_covers_them(canary):
    *_, baseline = canary
    workdir = canary[0]
    with h5py.File(workdir / "out" / "rounds" / "1" / "pseudo_features.h5", "r") as handle:
        assert handle["features"].shape[0] > 0


def test_control_changing_a_seen_label_changes_outputs(canary):
    workdir, root, pristine, params, unseen, baseline = canary
    reset(root, pristine)
    seen_class = next(c for c in range(1, 17) if c not in unseen)
    other_seen = next(c for c in range(1, 17) if c not in unseen and c != seen_class)
    assert relabel_train(root, {seen_class: other_seen}) > 0
    changed = training_outputs(workdir, params)
    assert changed["backbone"] != baseline["backbone"]
    assert changed["train_cache"] != baseline["train_cache"]
