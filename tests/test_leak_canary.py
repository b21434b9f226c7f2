"""Leak canary: the ground truth may tell a training stage one bit per training image, whether it holds an
unseen pixel. An image that does is unlabelled: no label of it, seen or unseen, may reach any training
stage, and neither may which unseen class it holds or where.

So any change to the labels of an unlabelled image that keeps at least one unseen pixel in it (the bit
unchanged) must leave every zero-shot artifact bit-identical: the backbone, the train cache and every
file of every zero-shot method's output (generators, classifiers, pseudo-features, training logs). The
edits: relabel its seen pixels, shrink its unseen object to a few pixels, move the object, collapse or
permute the unseen ids. Two positive controls make the check able to fail: a seen label changed in a
labelled image changes every artifact (but the embeddings and encoder maps, made without labels);
permuting the unseen labels changes the supervised ceiling, the one method that may read them (from its
own file). The digests cover every byte that can carry information (``digest_file``).

Two configurations, so that every training path runs under the canary:
- ``canary``: shared encoder maps (a frozen encoder, whole images), balanced sampling, one recursive round.
  Also the val and dev labels: no training artifact may depend on them, zero-shot or ceiling; the metrics
  must (the control).
- ``canary_all_paths``: the path the VOC and Context presets train on, the encoder fine-tuned on random
  crops through the DataLoader (no shared maps), natural sampling, two recursive rounds. Its edits of the
  unlabelled images run as one combined rerun, with both controls.
"""

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import mining_dataset, run_stages_in_process
from zsseg.backbone_training import SeenTrainingImages
from zsseg.methods import METHODS, results
from zsseg.network import SegmentationNetwork

pytestmark = pytest.mark.pipeline

UNSEEN_K = 3
TRAINING_STAGES = ("prepare", "embed", "encode", "backbone", "features", "samples", "ceiling_labels",
                   *(m.stage for m in METHODS))
ZERO_SHOT = {method.name for method in METHODS if method.zero_shot}
# Files every zero-shot stage reads that are made from the class names (embeddings) and the images (encoder
# maps) alone: digested with the rest, but no label may change them, so the positive control leaves them be.
LABEL_FREE = {"embeddings.npz", "encoder_maps.h5"}
# The path the presets train on: no shared maps, the encoder fine-tuned on 32 px crops of the 64 px images
# through the DataLoader, the classifier's seen features at their natural frequencies, two recursive rounds.
# With natural sampling, ZS3Net's unseen weight (100): at the tiny params' 2.0, round 2 mines nothing.
ALL_PATHS = {"backbone.share_encoder_maps": False, "backbone.freeze_encoder": False, "backbone.crop_size": 32,
             "classifier.sampling": "natural", "classifier.unseen_weight": 100.0,
             "recursion.rounds": {"1": 0, "2": 1}}
CROP_SIZE = ALL_PATHS["backbone.crop_size"]


def _framed(parts: list[bytes]) -> bytes:
    """The parts, each after its length: no two different lists of parts give the same bytes."""
    return b"".join(len(part).to_bytes(8, "little") + part for part in parts)


def _array_bytes(value) -> bytes:
    """An HDF5 attribute or dataset value, whole: its dtype, shape and every byte (or every string); never
    ``str`` of an array, which numpy shortens with "..."."""
    if isinstance(value, bytes):
        return b"bytes:" + value
    if isinstance(value, str):
        return b"str:" + value.encode()
    array = np.asarray(value)
    if array.dtype.kind in "OSU":
        items = [item.decode() if isinstance(item, bytes) else item for item in array.ravel().tolist()]
        return repr((array.dtype.kind, array.shape, items)).encode()
    return _framed([f"{array.dtype.str} {array.shape}".encode(), np.ascontiguousarray(array).tobytes()])


def _object_parts(value, parts: list[bytes]) -> None:
    """Every entry of a loaded .pt, depth first: each key, each tensor's dtype, shape and bytes, each plain
    value's repr. A type it does not know fails the test rather than go unhashed."""
    if torch.is_tensor(value):
        tensor = value.detach().cpu().contiguous()
        parts += [f"tensor {tensor.dtype} {tuple(tensor.shape)}".encode(),
                  tensor.reshape(-1).view(torch.uint8).numpy().tobytes()]
    elif isinstance(value, dict):
        parts.append(f"{type(value).__name__} {len(value)}".encode())
        for key, item in value.items():
            parts.append(repr(key).encode())
            _object_parts(item, parts)
    elif isinstance(value, (list, tuple)):
        parts.append(f"{type(value).__name__} {len(value)}".encode())
        for item in value:
            _object_parts(item, parts)
    elif value is None or isinstance(value, (bool, int, float, str, bytes)):
        parts.append(repr(value).encode())
    else:
        raise TypeError(f"digest_file: a {type(value).__name__} in a .pt, not hashed: {value!r}")


def digest_file(path) -> str:
    """Every byte of a file that can carry information. A .pt and an .h5 are hashed by their content, not
    their bytes: what is left out is the container's layout (the .pt's zip record names and padding, HDF5's
    chunking, filters, object addresses and free space), which the code writes the same whatever the data.
    Every other file (the JSON training logs, the .npz embeddings) by its bytes."""
    if path.suffix == ".pt":
        # Every entry: tensors, and the class names, unseen indices, configs and training ids beside them.
        parts = []
        _object_parts(torch.load(path, map_location="cpu", weights_only=True), parts)
        return hashlib.sha256(_framed(parts)).hexdigest()
    if path.suffix == ".h5":
        # Every group and dataset by name, each with every attribute, and every dataset's whole value.
        parts = []

        def add(name, node):
            parts.append(f"{type(node).__name__} {name}".encode())
            for key in sorted(node.attrs):
                parts.extend([f"attribute {key}".encode(), _array_bytes(node.attrs[key])])
            if isinstance(node, h5py.Dataset):
                parts.append(_array_bytes(node[()]))

        with h5py.File(path, "r") as handle:
            add("/", handle)
            handle.visititems(add)
        return hashlib.sha256(_framed(parts)).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_digest_sees_every_entry_of_a_pt_and_every_byte_of_an_h5_attribute(tmp_path):
    """What the digest once missed: a .pt entry beside its tensors, and an attribute's middle (numpy's str
    of a long array elides it)."""
    def pt_digest(content):
        torch.save(content, tmp_path / "file.pt")
        return digest_file(tmp_path / "file.pt")

    weights = {"w": torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)}
    same = pt_digest({"state_dict": weights, "training_ids": ["a", "b"], "config": {"dim": 3}})
    assert same == pt_digest({"state_dict": weights, "training_ids": ["a", "b"], "config": {"dim": 3}})
    assert same != pt_digest({"state_dict": weights, "training_ids": ["a", "c"], "config": {"dim": 3}})
    assert same != pt_digest({"state_dict": weights, "training_ids": ["a", "b"], "config": {"dim": 4}})
    assert same != pt_digest({"state_dict": {"w": weights["w"].reshape(3, 2)}, "training_ids": ["a", "b"],
                              "config": {"dim": 3}})

    def h5_digest(values):
        with h5py.File(tmp_path / "file.h5", "w") as handle:
            handle.create_dataset("x", data=np.zeros(2)).attrs["ids"] = values
        return digest_file(tmp_path / "file.h5")

    values = np.arange(5000)
    changed = values.copy()
    changed[2500] = -1
    assert str(values) == str(changed)
    assert h5_digest(values) == h5_digest(values.copy()) != h5_digest(changed)
    assert h5_digest(["a"] * 2000) != h5_digest(["a"] * 1000 + ["b"] + ["a"] * 999)


def training_artifacts(workdir, params_path) -> tuple[dict[str, str], dict[str, str]]:
    """Run every training stage and digest every file it wrote: (the zero-shot artifacts: the backbone, the
    train cache, the samples, the label-free inputs and each zero-shot method's output; what may read the
    unseen labels: the ceiling's labels and output, and the mining precision diagnostic). Methods come from
    the registry, so a new one is covered."""
    out = workdir / "out"
    shutil.rmtree(out, ignore_errors=True)
    # mining_precision is no training stage: the report's diagnostic, which may read the unseen labels.
    run_stages_in_process(params_path, out, (*TRAINING_STAGES, "mining_precision"))
    rounds = sorted(int(r) for r in yaml.safe_load(params_path.read_text())["recursion"]["rounds"])
    zero_shot = digests(out, [out / "backbone", *(out / r.directory for r in results(rounds)
                                                  if r.method.name in ZERO_SHOT)])
    for name in ("features/labelled.h5", "features/pool.h5", "samples.h5", *LABEL_FREE):
        zero_shot[name] = digest_file(out / name)
    upper_bound = digests(out, [out / r.directory for r in results(rounds) if r.method.name not in ZERO_SHOT])
    upper_bound["ceiling_labels.h5"] = digest_file(out / "ceiling_labels.h5")
    upper_bound["mining_precision.csv"] = digest_file(out / "mining_precision.csv")
    return zero_shot, upper_bound


def digests(out, directories) -> dict[str, str]:
    return {str(path.relative_to(out)): digest_file(path) for directory in directories
            for path in sorted(directory.iterdir())}


def evaluation_outputs(workdir, params_path) -> dict[str, str]:
    """Run the evaluate stage on the trained run in ``workdir/out`` and digest all it wrote: the val and dev
    metrics of every result, the val confusion matrices and the headline."""
    out = workdir / "out"
    run_stages_in_process(params_path, out, ("evaluate",))
    found = digests(out, [out / "metrics", out / "dev_metrics", out / "confusion"])
    found["headline.json"] = digest_file(out / "headline.json")
    return found


def edit_labels(root, image_id, edit) -> int:
    """Apply ``edit(label) -> label`` to one label (of any split); returns how many pixels changed."""
    path = root / "labels" / f"{image_id}.png"
    label = np.array(Image.open(path))
    edited = edit(label.copy())
    Image.fromarray(edited, mode="L").save(path)
    return int((edited != label).sum())


def split_ids(root, split) -> list[str]:
    return (root / f"{split}.txt").read_text().split()


def unlabelled_images(root, unseen) -> list[str]:
    """The training images with an unseen pixel: the one bit per image a training stage may know."""
    return [image_id for image_id in split_ids(root, "train")
            if np.isin(np.array(Image.open(root / "labels" / f"{image_id}.png")), unseen).any()]


@dataclass
class Canary:
    workdir: Path
    root: Path                  # the dataset the stages read, edited by each rerun
    pristine: Path              # its copy as written
    params: Path
    unseen: list[int]
    unlabelled: list[str]
    labelled: list[str]
    baseline: dict[str, str]    # the zero-shot artifacts' digests
    ceiling: dict[str, str]     # the ceiling's
    crops: list[tuple[int, int]] = field(default_factory=list)  # the sizes of the backbone's crops
    metrics: dict[str, str] | None = None  # the evaluation's digests


def make_canary(workdir, evaluate=False, **overrides) -> Canary:
    # The recursive rounds mine pseudo-features, so the canary covers them.
    root, params = mining_dataset(workdir, **{"dataset.unseen": UNSEEN_K, **overrides})
    classes = (root / "classes.txt").read_text().split("\n")
    unseen = [classes.index(name) for name in (root / "unseen.txt").read_text().split("\n")[:UNSEEN_K]]
    unlabelled = unlabelled_images(root, unseen)
    labelled = [image_id for image_id in split_ids(root, "train") if image_id not in unlabelled]
    assert unlabelled and labelled
    pristine = workdir / "pristine"
    shutil.copytree(root, pristine)
    crops = []
    original = SeenTrainingImages._scale_and_crop

    def recording_crops(self, image, label, rng):
        image, label = original(self, image, label, rng)
        crops.append(image.shape[:2])
        return image, label

    with pytest.MonkeyPatch.context() as patch:  # backbone.workers is 0: the crops are made in this process
        patch.setattr(SeenTrainingImages, "_scale_and_crop", recording_crops)
        baseline, ceiling = training_artifacts(workdir, params)
    canary = Canary(workdir, root, pristine, params, unseen, unlabelled, labelled, baseline, ceiling, crops)
    if evaluate:
        canary.metrics = evaluation_outputs(workdir, params)
        # The metrics' control below means something only if the evaluation gives the same bytes again.
        assert evaluation_outputs(workdir, params) == canary.metrics
    return canary


@pytest.fixture(scope="module")
def canary(tmp_path_factory) -> Canary:
    return make_canary(tmp_path_factory.mktemp("canary"), evaluate=True)


@pytest.fixture(scope="module")
def canary_all_paths(tmp_path_factory) -> Canary:
    return make_canary(tmp_path_factory.mktemp("canary_all_paths"), **ALL_PATHS)


def rerun(canary: Canary, edits, evaluate=False) -> tuple[dict[str, str], dict[str, str], dict[str, str] | None]:
    """(zero-shot, ceiling, evaluation) digests after ``edits``, ``[(image_ids, edit), ...]`` applied in turn to
    the pristine labels; each edit must change some pixel, and no training image's bit may change."""
    shutil.rmtree(canary.root)
    shutil.copytree(canary.pristine, canary.root)
    for image_ids, edit in edits:
        assert sum(edit_labels(canary.root, image_id, edit) for image_id in image_ids) > 0
    assert unlabelled_images(canary.root, canary.unseen) == canary.unlabelled
    zero_shot, ceiling = training_artifacts(canary.workdir, canary.params)
    return zero_shot, ceiling, evaluation_outputs(canary.workdir, canary.params) if evaluate else None


def rerun_after(canary: Canary, image_ids, edit, with_ceiling=False):
    """The zero-shot artifacts (and the ceiling's) after ``edit`` of the labels of ``image_ids``."""
    zero_shot, ceiling, _ = rerun(canary, [(image_ids, edit)])
    return (zero_shot, ceiling) if with_ceiling else zero_shot


def encoder_changes(out) -> list[str]:
    """The encoder's tensors that the backbone stage changed from the ImageNet weights it starts from."""
    saved = torch.load(out / "backbone" / "network.pt", map_location="cpu", weights_only=True)
    initial = SegmentationNetwork(**saved["config"], weights="packaged").state_dict()
    encoder = [name for name in initial if name.startswith("encoder.")]
    assert encoder and all(name in saved["state_dict"] for name in encoder)
    return [name for name in encoder if not torch.equal(saved["state_dict"][name], initial[name])]


def assert_mined(out, round_index):
    with h5py.File(out / "rounds" / str(round_index) / "pseudo_features.h5", "r") as handle:
        assert handle["classes"].shape[0] > 0
    assert json.loads((out / "rounds" / str(round_index) / "training_log.json").read_text())["mined_classes"] > 0


# The edits of an unlabelled image's labels. Each keeps an unseen pixel in it.

def relabel_seen_pixels(unseen):
    seen_other = next(c for c in range(1, 17) if c not in unseen)

    def relabel(label):
        label[~np.isin(label, unseen)] = seen_other
        return label

    return relabel


def shrink_unseen_object(unseen):
    def shrink(label):
        rows, columns = np.nonzero(np.isin(label, unseen))
        keep = label[rows[:3], columns[:3]].copy()
        label[rows, columns] = 0
        label[rows[:3], columns[:3]] = keep
        return label

    return shrink


def move_unseen_object(unseen):
    def move(label):
        mask = np.isin(label, unseen)
        values = label[mask]
        label[mask] = 0
        moved = np.roll(np.roll(mask, 17, axis=0), 23, axis=1)
        label[moved] = values[0]
        return label

    return move


def permute_unseen_ids(unseen):
    rotation = dict(zip(unseen, unseen[1:] + unseen[:1]))
    return lambda label: np.vectorize(lambda v: rotation.get(v, v), otypes=[np.uint8])(label)


def test_the_artifacts_cover_every_method_and_mined_pseudo_features(canary):
    assert {"backbone/network.pt", "features/labelled.h5", "features/pool.h5", "samples.h5", "rounds/0/generator.pt",
            "rounds/0/classifier.pt",
            "rounds/1/pseudo_features.h5", "self_training/classifier.pt",
            "ablations/without_pseudo_features/1/classifier.pt", *LABEL_FREE} <= set(canary.baseline)
    assert {"ceiling/classifier.pt", "ceiling_labels.h5"} <= set(canary.ceiling)
    assert not any(name.startswith("ceiling") for name in canary.baseline)
    assert_mined(canary.workdir / "out", 1)
    # The path this configuration stands for: whole images through the frozen encoder's shared maps.
    assert canary.crops == []
    assert encoder_changes(canary.workdir / "out") == []


def test_relabelling_the_seen_pixels_of_an_unlabelled_image(canary):
    assert rerun_after(canary, canary.unlabelled[:1], relabel_seen_pixels(canary.unseen)) == canary.baseline


def test_shrinking_the_unseen_object_of_an_unlabelled_image_to_a_few_pixels(canary):
    assert rerun_after(canary, canary.unlabelled[1:2], shrink_unseen_object(canary.unseen)) == canary.baseline


def test_moving_the_unseen_object_of_an_unlabelled_image(canary):
    assert rerun_after(canary, canary.unlabelled[2:3], move_unseen_object(canary.unseen)) == canary.baseline


def test_permuting_the_unseen_labels_changes_the_ceiling_and_no_zero_shot_artifact(canary):
    zero_shot, permuted_ceiling = rerun_after(canary, canary.unlabelled, permute_unseen_ids(canary.unseen),
                                              with_ceiling=True)
    assert zero_shot == canary.baseline
    assert permuted_ceiling["ceiling/classifier.pt"] != canary.ceiling["ceiling/classifier.pt"]
    # The mining precision diagnostic reads those labels too: it changes, and no training artifact does.
    assert permuted_ceiling["mining_precision.csv"] != canary.ceiling["mining_precision.csv"]


def test_collapsing_the_unseen_ids(canary):
    unseen = canary.unseen
    assert rerun_after(canary, canary.unlabelled, lambda label: np.where(np.isin(label, unseen), unseen[0],
                                                                         label).astype(np.uint8)) == canary.baseline


def test_editing_the_val_and_dev_labels_changes_the_metrics_and_no_training_artifact(canary):
    """Every val and dev pixel's class moved to the next one: no training artifact, zero-shot or ceiling, may
    change; every metrics file must (the control)."""
    class_count = len([name for name in (canary.root / "classes.txt").read_text().split("\n") if name])
    ids = split_ids(canary.root, "val") + split_ids(canary.root, "dev")
    assert split_ids(canary.root, "dev")

    def next_class(label):
        return np.where(label < class_count, (label.astype(np.int64) + 1) % class_count, label).astype(np.uint8)

    zero_shot, ceiling, metrics = rerun(canary, [(ids, next_class)], evaluate=True)
    assert zero_shot == canary.baseline
    assert ceiling == canary.ceiling
    assert set(metrics) == set(canary.metrics)
    assert any(name.startswith("dev_metrics/") for name in metrics)
    unchanged = [name for name in metrics if metrics[name] == canary.metrics[name]]
    assert unchanged == [], unchanged


def test_all_paths_configuration_runs_them(canary_all_paths):
    """The crop loader, the fine-tuned encoder, natural sampling and two mining rounds really ran."""
    canary, out = canary_all_paths, canary_all_paths.workdir / "out"
    assert canary.crops and set(canary.crops) == {(CROP_SIZE, CROP_SIZE)}
    changed = encoder_changes(out)
    assert len(changed) > 100, changed
    with h5py.File(out / "samples.h5", "r") as handle:
        assert "classifier" in handle  # natural: the classifier's own sample beside the generator's
    with h5py.File(out / "encoder_maps.h5", "r") as handle:
        assert not handle.attrs["shared"]
    assert {f"{directory}/{name}" for directory in ("rounds/2", "ablations/without_pseudo_features/2",
                                                    "ablations/pseudo_labelled_classifier/2")
            for name in ("classifier.pt", "generator.pt")} <= set(canary.baseline)
    for round_index in (1, 2):
        assert_mined(out, round_index)


def test_all_paths_every_edit_of_the_unlabelled_images_at_once(canary_all_paths):
    """Relabel the seen pixels of one unlabelled image, move the unseen object of another, then permute the
    unseen ids of all: no zero-shot artifact changes; the ceiling, which reads the unseen labels, does."""
    canary = canary_all_paths
    unseen, unlabelled = canary.unseen, canary.unlabelled
    zero_shot, ceiling, _ = rerun(canary, [(unlabelled[:1], relabel_seen_pixels(unseen)),
                                           (unlabelled[1:2], move_unseen_object(unseen)),
                                           (unlabelled, permute_unseen_ids(unseen))])
    assert zero_shot == canary.baseline
    assert ceiling["ceiling/classifier.pt"] != canary.ceiling["ceiling/classifier.pt"]


@pytest.mark.parametrize("configuration", ["canary", "canary_all_paths"])
def test_control_changing_a_seen_label_of_a_labelled_image_changes_every_artifact(configuration, request):
    """In the main configuration one seen class of one labelled image. Through the crop loader, the changed
    pixels of one image may never reach the backbone (random crops of a random scale, and drop_last leaves
    images out of each epoch): with the tiny params, that one edit left the backbone bit-identical. So there
    each seen pixel of every labelled image moves to the next seen class."""
    canary = request.getfixturevalue(configuration)
    if configuration == "canary":
        present = np.unique(np.array(Image.open(canary.root / "labels" / f"{canary.labelled[0]}.png")))
        seen_class = next(c for c in present if c not in (0, *canary.unseen))
        other = next(c for c in range(1, 17) if c not in (seen_class, *canary.unseen))
        images, edit = canary.labelled[:1], lambda label: np.where(label == seen_class, other, label).astype(np.uint8)
    else:
        seen = [c for c in range(1, 17) if c not in canary.unseen]
        rotation = dict(zip(seen, seen[1:] + seen[:1]))
        images, edit = canary.labelled, np.vectorize(lambda v: rotation.get(v, v), otypes=[np.uint8])
    changed = rerun_after(canary, images, edit)
    assert set(changed) == set(canary.baseline)
    unchanged = {name for name in canary.baseline if changed[name] == canary.baseline[name]}
    assert unchanged == LABEL_FREE, unchanged
