"""Leak canary: the ground truth may tell a training stage one bit per training image, whether it holds an
unseen pixel. An image that does is unlabelled: no label of it, seen or unseen, may reach any training
stage, and neither may which unseen class it holds or where.

So any change to the labels of an unlabelled image that keeps at least one unseen pixel in it (the bit
unchanged) must leave every zero-shot artifact bit-identical: the backbone, the train cache and every
file of every zero-shot method's output (generators, classifiers, pseudo-features, training logs). The
edits: relabel its seen pixels, shrink its unseen object to a few pixels, move the object, collapse or
permute the unseen ids. Two positive controls make the check able to fail: a seen label changed in a
labelled image changes every artifact; permuting the unseen labels changes the supervised ceiling, the
one method that may read them (from its own file).
"""

import hashlib
import json
import shutil

import h5py
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import mining_dataset, run_stages_in_process
from zsseg.methods import METHODS, results

pytestmark = pytest.mark.pipeline

UNSEEN_K = 3
TRAINING_STAGES = ("prepare", "embed", "encode", "backbone", "features", "samples", "ceiling_labels",
                   *(m.stage for m in METHODS))
ZERO_SHOT = {method.name for method in METHODS if method.zero_shot}


def digest_file(path) -> str:
    if path.suffix == ".pt":
        content = torch.load(path, weights_only=False)
        tensors = content.get("state_dict", content)
        return hashlib.sha256(b"".join(value.detach().cpu().numpy().tobytes() for _, value in sorted(tensors.items())
                                       if torch.is_tensor(value))).hexdigest()
    if path.suffix == ".h5":
        # Every dataset of every group, and every attribute, by name.
        parts = []

        def add(name, node):
            parts.append(name.encode() + repr(sorted((key, str(value)) for key, value in node.attrs.items())).encode())
            if isinstance(node, h5py.Dataset):
                values = node[()]
                parts.append("\n".join(v.decode() if isinstance(v, bytes) else str(v) for v in values).encode()
                             if values.dtype == object else values.tobytes())

        with h5py.File(path, "r") as handle:
            add("/", handle)
            handle.visititems(add)
        return hashlib.sha256(b"".join(parts)).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def training_artifacts(workdir, params_path) -> tuple[dict[str, str], dict[str, str]]:
    """Run every training stage and digest every file it wrote: (the zero-shot artifacts: the backbone, the
    train cache and each zero-shot method's output; the ceiling's). Methods come from the registry, so a
    new one is covered."""
    out = workdir / "out"
    shutil.rmtree(out, ignore_errors=True)
    run_stages_in_process(params_path, out, TRAINING_STAGES)
    rounds = sorted(int(r) for r in yaml.safe_load(params_path.read_text())["recursion"]["rounds"])

    def digests(directories):
        return {str(path.relative_to(out)): digest_file(path) for directory in directories
                for path in sorted(directory.iterdir())}

    zero_shot = digests([out / "backbone", *(out / r.directory for r in results(rounds) if r.method.name in ZERO_SHOT)])
    for name in ("features/labelled.h5", "features/pool.h5", "samples.h5"):
        zero_shot[name] = digest_file(out / name)
    upper_bound = digests([out / r.directory for r in results(rounds) if r.method.name not in ZERO_SHOT])
    return zero_shot, upper_bound


def edit_labels(root, image_id, edit) -> int:
    """Apply ``edit(label) -> label`` to one training label; returns how many pixels changed."""
    path = root / "labels" / f"{image_id}.png"
    label = np.array(Image.open(path))
    edited = edit(label.copy())
    Image.fromarray(edited, mode="L").save(path)
    return int((edited != label).sum())


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("canary")
    # The recursive rounds mine pseudo-features, so the canary covers them.
    root, params = mining_dataset(workdir, **{"dataset.unseen": UNSEEN_K})
    classes = (root / "classes.txt").read_text().split("\n")
    unseen = [classes.index(name) for name in (root / "unseen.txt").read_text().split("\n")[:UNSEEN_K]]
    labels = {image_id: np.array(Image.open(root / "labels" / f"{image_id}.png"))
              for image_id in (root / "train.txt").read_text().split()}
    unlabelled = [image_id for image_id, label in labels.items() if np.isin(label, unseen).any()]
    labelled = [image_id for image_id in labels if image_id not in unlabelled]
    assert unlabelled and labelled
    pristine = workdir / "pristine"
    shutil.copytree(root, pristine)
    baseline, ceiling = training_artifacts(workdir, params)
    return workdir, root, pristine, params, unseen, unlabelled, labelled, baseline, ceiling


def rerun_after(canary, image_ids, edit, with_ceiling=False):
    """The zero-shot artifacts (and the ceiling's) after ``edit`` of the labels of ``image_ids``."""
    workdir, root, pristine, params, *_ = canary
    shutil.rmtree(root)
    shutil.copytree(pristine, root)
    assert sum(edit_labels(root, image_id, edit) for image_id in image_ids) > 0
    zero_shot, ceiling = training_artifacts(workdir, params)
    return (zero_shot, ceiling) if with_ceiling else zero_shot


def test_the_artifacts_cover_every_method_and_mined_pseudo_features(canary):
    *_, baseline, ceiling = canary
    assert {"backbone/network.pt", "features/labelled.h5", "features/pool.h5", "samples.h5", "rounds/0/generator.pt",
            "rounds/0/classifier.pt",
            "rounds/1/pseudo_features.h5", "self_training/classifier.pt",
            "ablations/without_pseudo_features/1/classifier.pt"} <= set(baseline)
    assert "ceiling/classifier.pt" in ceiling and not any(name.startswith("ceiling") for name in baseline)
    workdir = canary[0]
    with h5py.File(workdir / "out" / "rounds" / "1" / "pseudo_features.h5", "r") as handle:
        assert handle["classes"].shape[0] > 0
    assert json.loads((workdir / "out" / "rounds" / "1" / "training_log.json").read_text())["mined_classes"] > 0


def test_relabelling_the_seen_pixels_of_an_unlabelled_image(canary):
    _, _, _, _, unseen, unlabelled, _, baseline, _ = canary
    seen_other = next(c for c in range(1, 17) if c not in unseen)

    def relabel(label):
        label[~np.isin(label, unseen)] = seen_other
        return label

    assert rerun_after(canary, unlabelled[:1], relabel) == baseline


def test_shrinking_the_unseen_object_of_an_unlabelled_image_to_a_few_pixels(canary):
    _, _, _, _, unseen, unlabelled, _, baseline, _ = canary

    def shrink(label):
        rows, columns = np.nonzero(np.isin(label, unseen))
        keep = label[rows[:3], columns[:3]].copy()
        label[rows, columns] = 0
        label[rows[:3], columns[:3]] = keep
        return label

    assert rerun_after(canary, unlabelled[1:2], shrink) == baseline


def test_moving_the_unseen_object_of_an_unlabelled_image(canary):
    _, _, _, _, unseen, unlabelled, _, baseline, _ = canary

    def move(label):
        mask = np.isin(label, unseen)
        values = label[mask]
        label[mask] = 0
        moved = np.roll(np.roll(mask, 17, axis=0), 23, axis=1)
        label[moved] = values[0]
        return label

    assert rerun_after(canary, unlabelled[2:3], move) == baseline


def test_permuting_the_unseen_labels_changes_the_ceiling_and_no_zero_shot_artifact(canary):
    _, _, _, _, unseen, unlabelled, _, baseline, ceiling = canary
    rotation = dict(zip(unseen, unseen[1:] + unseen[:1]))
    zero_shot, permuted_ceiling = rerun_after(
        canary, unlabelled, lambda label: np.vectorize(lambda v: rotation.get(v, v), otypes=[np.uint8])(label),
        with_ceiling=True)
    assert zero_shot == baseline
    assert permuted_ceiling["ceiling/classifier.pt"] != ceiling["ceiling/classifier.pt"]


def test_collapsing_the_unseen_ids(canary):
    _, _, _, _, unseen, unlabelled, _, baseline, _ = canary
    assert rerun_after(canary, unlabelled, lambda label: np.where(np.isin(label, unseen), unseen[0],
                                                                  label).astype(np.uint8)) == baseline


def test_control_changing_a_seen_label_of_a_labelled_image_changes_every_artifact(canary):
    _, _, _, _, unseen, _, labelled, baseline, _ = canary
    present = np.unique(np.array(Image.open(canary[1] / "labels" / f"{labelled[0]}.png")))
    seen_class = next(c for c in present if c not in (0, *unseen))
    other = next(c for c in range(1, 17) if c not in (seen_class, *unseen))
    changed = rerun_after(canary, labelled[:1], lambda label: np.where(label == seen_class, other,
                                                                        label).astype(np.uint8))
    assert set(changed) == set(baseline)
    unchanged = [name for name in baseline if changed[name] == baseline[name]]
    assert unchanged == [], unchanged
