"""dataset.background: include (ZS3Net's K-splits: background is a seen class) | ignore (SPNet's and CaGNet's
protocol: background pixels are ignored in every training stage and in evaluation, and never predicted).
Hand-made labels and confusion matrices, the masked classifier row, the refusal where there is no background
(COCO-Stuff), CaGNet's Pascal-Context classes, the presets, and a tiny run with background ignored."""

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from conftest import PROJECT_ROOT, run_stages_in_process, tiny_params, write_caches_by_hand, write_folder_dataset, \
    write_params
from pascal_trees import CONTEXT_NAMES, write_context_tree
from test_cocostuff import write_cocostuff_tree
from test_presets import WORD2VEC, apply, leaves
from zsseg.classifier import MASKED_LOGIT, is_masked, linear_classifier, train_classifier
from zsseg.config import ClassifierParams, ParamsError, load_params
from zsseg.datasets.context import context_index_map, prepare_context, prepare_context33
from zsseg.datasets.folder import DatasetError, FolderDataset
from zsseg.datasets.registry import check_background
from zsseg.dense_prediction import TestTimeAugmentation, dense_labels, view_probabilities
from zsseg.metrics import segmentation_metrics
from zsseg.presets import PRESETS as PRESETS_DIRECTORY
from zsseg.pseudo_features import score_pool

CPU = torch.device("cpu")
NAMES = ["background", "cat", "dog", "cow"]


# --- labels -------------------------------------------------------------------------------------------

@pytest.fixture
def labelled_dataset(tmp_path):
    """Background (0), cat (1), dog (2), cow (3, unseen) and 255 borders; one image holds cow."""
    label = np.zeros((16, 16), dtype=np.uint8)
    label[2:6, 2:6], label[8:12, 8:12], label[0, :] = 1, 2, 255
    with_cow = label.copy()
    with_cow[12:15, 1:4] = 3
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    splits = {"train": {"plain": (image, label), "cow": (image, with_cow)}, "val": {"v": (image, with_cow)}}
    return write_folder_dataset(tmp_path / "dataset", NAMES, splits, ["cow"]), label, with_cow


def test_ignore_turns_background_pixels_into_255_wherever_a_label_is_loaded(labelled_dataset):
    root, label, with_cow = labelled_dataset
    include, ignore = FolderDataset(root), FolderDataset(root, "ignore")
    for image_id, raw in (("plain", label), ("cow", with_cow), ("v", with_cow)):
        np.testing.assert_array_equal(include.load_label(image_id), raw)
        expected = raw.copy()
        expected[raw == 0] = 255
        np.testing.assert_array_equal(ignore.load_label(image_id), expected)
        np.testing.assert_array_equal(ignore.load(image_id)[1], expected)
        assert (ignore.load_label(image_id) == 0).sum() == 0 and (include.load_label(image_id) == 0).sum() > 0


def test_ignore_leaves_background_out_of_the_seen_classes_and_keeps_the_unlabelled_bit(labelled_dataset):
    root, label, with_cow = labelled_dataset
    include = FolderDataset(root).class_split(["cow"])
    ignore = FolderDataset(root, "ignore").class_split(["cow"])
    assert (include.seen, include.unseen, include.ignored) == ((0, 1, 2), (3,), ())
    assert (ignore.seen, ignore.unseen, ignore.ignored) == ((1, 2), (3,), (0,))
    # The backbone's labels: seen-classifier indices, background ignored.
    assert list(ignore.seen_label_map()[[0, 1, 2, 3, 255]]) == [255, 0, 1, 255, 255]
    assert list(include.seen_label_map()[[0, 1, 2, 3, 255]]) == [0, 1, 2, 255, 255]
    # The protocol's bit looks at unseen pixels alone: the same either way.
    for split, dataset in ((include, FolderDataset(root)), (ignore, FolderDataset(root, "ignore"))):
        assert not split.is_unlabelled(dataset.load_label("plain")) and split.is_unlabelled(dataset.load_label("cow"))
        label_seen, unlabelled = split.training_label(dataset.load_label("cow"))
        assert unlabelled and (label_seen == 255).all()


def test_the_backbone_skips_a_batch_whose_every_pixel_is_ignored(tmp_path):
    """Background alone: with ignore, no pixel of these images is labelled, and the cross-entropy of such a batch
    is 0/0. The backbone takes no step on it instead of failing on a NaN loss; with include it trains."""
    import dataclasses

    from zsseg.backbone_training import train_segmentation_network
    from zsseg.network import SegmentationNetwork, weights_of

    rng = np.random.default_rng(0)
    items = {f"t{i}": (rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), np.zeros((32, 32), np.uint8))
             for i in range(4)}
    root = write_folder_dataset(tmp_path / "plain", NAMES, {"train": items, "val": {"v": items["t0"]}}, ["cow"])
    backbone = dataclasses.replace(load_params(PROJECT_ROOT / "params.yaml").backbone, feature_dim=16, epochs=2,
                                   batch_size=2)
    logs = {}
    for background in ("include", "ignore"):
        dataset = FolderDataset(root, background)
        split = dataset.class_split(["cow"])
        network = SegmentationNetwork(backbone.arch, len(split.seen), backbone.feature_dim, backbone.aspp_rates,
                                      weights_of(backbone))
        before = {key: value.clone() for key, value in network.state_dict().items()}
        logs[background] = train_segmentation_network(network, dataset, dataset.ids("train"), split, backbone, 0,
                                                      CPU)
        changed = any(not torch.equal(before[key], value) for key, value in network.state_dict().items())
        assert changed == (background == "include")
    assert [entry["loss"] for entry in logs["ignore"]] == [0.0, 0.0]
    assert all(entry["loss"] > 0 for entry in logs["include"])


# --- metrics ------------------------------------------------------------------------------------------

# Rows: ground truth; columns: predictions. Unseen: cow. Background's row is what ignore drops; its column
# (pixels of other classes predicted as background) still counts against those classes.
CONFUSION = np.array([[50, 5, 0, 5],
                      [4, 30, 6, 0],
                      [2, 3, 20, 5],
                      [0, 2, 3, 15]])


def test_with_ignore_background_is_in_no_mean_and_hiou_is_over_the_other_seen_classes():
    metrics = segmentation_metrics(CONFUSION, NAMES, unseen=[3], ignored=(0,))
    # By hand, background's row dropped: cat 30 / (40 + 35 - 30) = 2/3; dog 20 / (30 + 29 - 20) = 20/39;
    # cow 15 / (20 + 20 - 15) = 3/5. Seen: cat and dog.
    seen, unseen = (2 / 3 + 20 / 39) / 2, 3 / 5
    assert metrics["per_class_iou"] == {"background": None, "cat": pytest.approx(100 * 2 / 3, abs=1e-4),
                                        "dog": pytest.approx(100 * 20 / 39, abs=1e-4), "cow": 60.0}
    assert metrics["seen_miou"] == pytest.approx(100 * 23 / 39, abs=1e-4) == pytest.approx(100 * seen, abs=1e-4)
    assert metrics["unseen_miou"] == 60.0
    assert metrics["hiou"] == pytest.approx(100 * 69 / 116, abs=1e-4)
    assert metrics["miou"] == pytest.approx(100 * 347 / 585, abs=1e-4)
    assert metrics["pixel_acc"] == pytest.approx(100 * 65 / 90, abs=1e-4)
    assert metrics["seen_pixel_acc"] == pytest.approx(100 * 50 / 70, abs=1e-4)
    assert metrics["mean_acc"] == pytest.approx(100 * (30 / 40 + 20 / 30 + 15 / 20) / 3, abs=1e-4)
    assert metrics["seen_mean_acc"] == pytest.approx(100 * (30 / 40 + 20 / 30) / 2, abs=1e-4)
    # The same matrix with background a seen class (include): its IoU 50 / 66 counts, and cat's union grows.
    include = segmentation_metrics(CONFUSION, NAMES, unseen=[3])
    assert include["per_class_iou"]["background"] == pytest.approx(100 * 50 / 66, abs=1e-4)
    assert include["seen_miou"] == pytest.approx(100 * (50 / 66 + 30 / 50 + 20 / 39) / 3, abs=1e-4)


def test_ignored_background_counts_in_no_mean_even_when_absent_classes_count_as_zero():
    """As evaluation sees it under ignore: background's pixels are 255 and it is never predicted, so its row
    and column are empty. absent_classes: zero would count its undefined IoU as 0; ignore leaves it out."""
    confusion = CONFUSION.copy()
    confusion[0], confusion[:, 0] = 0, 0
    ignore = segmentation_metrics(confusion, NAMES, unseen=[3], absent_classes="zero", ignored=(0,))
    zero = segmentation_metrics(confusion, NAMES, unseen=[3], absent_classes="zero")
    assert ignore["per_class_iou"]["background"] is None and zero["per_class_iou"]["background"] == 0.0
    cat, dog = 30 / (36 + 35 - 30), 20 / (28 + 29 - 20)
    assert ignore["seen_miou"] == pytest.approx(100 * (cat + dog) / 2, abs=1e-4)
    assert zero["seen_miou"] == pytest.approx(100 * (0 + cat + dog) / 3, abs=1e-4)
    assert segmentation_metrics(confusion, NAMES, [3], "skip", (0,)) == ignore


# --- the masked classifier row -------------------------------------------------------------------------

CLASSIFIER = ClassifierParams(epochs=20, batch_size=64, learning_rate=0.01, generated_per_class=0,
                              sampling="balanced", unseen_weight=1.0)


def clusters(seed=0, per_class=200):
    """Features of background (0), cat (1) and dog (2): three separate clusters in 8 dimensions."""
    rng = np.random.default_rng(seed)
    centres = {c: 4.0 * np.eye(8)[c] for c in range(3)}
    return {c: torch.from_numpy((centre + rng.normal(size=(per_class, 8))).astype(np.float32))
            for c, centre in centres.items()}


def test_a_masked_class_keeps_its_row_and_is_never_predicted():
    features = clusters()
    masked, _ = train_classifier({1: features[1], 2: features[2]}, 3, CLASSIFIER, 0, CPU, "test", masked=(0,))
    assert torch.equal(masked.weight[0].detach(), torch.zeros(8)) and float(masked.bias[0].detach()) == MASKED_LOGIT
    assert is_masked(masked, 0) and not is_masked(masked, 1) and not is_masked(masked, 2)
    # Included, background's cluster is background; masked, it goes to another class, and so does everything.
    included, _ = train_classifier(features, 3, CLASSIFIER, 0, CPU, "test")
    assert (included(features[0]).argmax(1) == 0).float().mean() > 0.9
    every = torch.cat([*features.values(), 30 * torch.randn(500, 8)])
    assert (masked(every).argmax(1) != 0).all()
    assert (masked(every).softmax(1)[:, 0] == 0).all()
    with pytest.raises(ValueError, match=r"classes \[0\] are masked but have training features"):
        train_classifier(features, 3, CLASSIFIER, 0, CPU, "test", masked=(0,))


def test_masked_background_is_never_predicted_by_evaluation_mining_or_augmentation(tmp_path):
    features = clusters(seed=1, per_class=64)
    classifier, _ = train_classifier({1: features[1], 2: features[2]}, 3, CLASSIFIER, 0, CPU, "test", masked=(0,))
    # Feature maps (B, h, w, D) of background-like pixels, as the network gives them to dense_labels.
    maps = features[0].reshape(4, 4, 4, 8)
    assert (dense_labels(classifier, maps, (16, 16), CPU, "test") != 0).all()
    probabilities = view_probabilities(classifier, maps, (16, 16), True, CPU, "test")
    assert torch.isfinite(probabilities).all() and (probabilities[:, 0] == 0).all()
    augmentation = TestTimeAugmentation(lambda images: maps[:len(images)], [1.0, 0.5], True, CPU)
    labels, = augmentation.labels([classifier], [np.zeros((16, 16, 3), np.uint8)] * 4, "test")
    assert (labels != 0).all()
    # The mining pool's softmax (recursion and ZS5Net): background is never the top class, its share is 0.
    images = [(f"pool{i}", maps[i].numpy(), None) for i in range(4)]
    images.append(("labelled", maps[0].numpy(), np.ones((4, 4), np.uint8)))
    caches = write_caches_by_hand(tmp_path / "cache", images, NAMES[:3], [2])
    scored = list(score_pool(caches, classifier, "unlabelled_images", 2, CPU, "test"))
    assert sum(pixels.top.numel() for pixels in scored) == 64
    assert all((pixels.top != 0).all() for pixels in scored)


def test_zsseg_predict_keeps_a_masked_row_masked(monkeypatch):
    """`zsseg predict` with other names than the run's: a class the run masked is never fitted, --refit or not."""
    from zsseg import predict

    trained = linear_classifier(torch.cat([torch.zeros(1, 8), torch.eye(8)[1:3]]), torch.tensor([MASKED_LOGIT, 0, 0]))
    calls = {}

    def fake_train(features, num_classes, params, seed, device, stage, unseen=(), fixed_rows=None, masked=()):
        calls.update(features=sorted(features), unseen=list(unseen), fixed=sorted(fixed_rows or {}), masked=masked)
        return trained, []

    class Cache:
        class_names = NAMES[:3]

    monkeypatch.setattr(predict, "load_classifier", lambda directory: trained)
    monkeypatch.setattr(predict, "class_embeddings", lambda names, *source: np.ones((len(names), 4), np.float32))
    monkeypatch.setattr(predict, "_embedding_source", lambda run, params: ("minilm", None))
    monkeypatch.setattr(predict, "FeatureCache", lambda path: Cache())
    monkeypatch.setattr(predict, "sample_class_features", lambda cache, classes, *a, **k: {c: torch.ones(2, 8)
                                                                                          for c in classes})
    monkeypatch.setattr(predict, "load_generator", lambda directory, vectors: None)
    monkeypatch.setattr(predict, "generate_features", lambda generator, vectors, classes, *a: {
        c: torch.ones(2, 8) for c in classes})
    monkeypatch.setattr(predict, "train_classifier", fake_train)
    run = predict.TrainedRun(round_directory=PROJECT_ROOT, root=PROJECT_ROOT, embeddings_path=PROJECT_ROOT,
                             class_names=NAMES[:3], unseen=[2])
    params = load_params(PROJECT_ROOT / "params.yaml")
    for refit in (False, True):
        predict.build_classifier(run, ["background", "cat", "horse"], params, CPU, refit, lambda message: None)
        assert calls["masked"] == [0] and 0 not in calls["features"] and 0 not in calls["unseen"]
        assert calls["features"] == [1, 2] and calls["fixed"] == ([] if refit else [1])


# --- no background class: COCO-Stuff -------------------------------------------------------------------

def test_ignore_is_refused_where_class_0_is_not_background(tmp_path):
    with pytest.raises(ParamsError, match="dataset.background = 'ignore': dataset 'cocostuff' has no background "
                                          "class to ignore"):
        check_background("cocostuff", "ignore")
    check_background("cocostuff", "include")
    for name in ("voc", "context", "context33", "demo", "folder"):
        check_background(name, "ignore")
    # The folder format's own classes.txt decides for a folder dataset.
    image, label = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)
    root = write_folder_dataset(tmp_path / "things", ["person", "car"], {"train": {"a": (image, label)}})
    FolderDataset(root)
    with pytest.raises(DatasetError, match=r"has no background class to ignore \(class 0 is 'person', not "
                                           r"'background'\)"):
        FolderDataset(root, "ignore")
    assert FolderDataset(write_folder_dataset(tmp_path / "voc_like", ["__background__", "car"],
                                              {"train": {"a": (image, label)}}), "ignore").ignored == (0,)


def test_cocostuff_with_ignore_is_refused_before_anything_is_converted(tmp_path, capsys):
    from stages import prepare

    write_cocostuff_tree(tmp_path / "cocostuff")
    params = write_params(tmp_path / "params.yaml", tiny_params(**{
        "dataset.name": "cocostuff", "dataset.root": str(tmp_path / "cocostuff"), "dataset.unseen": ["cow"],
        "dataset.background": "ignore"}))
    with pytest.raises(SystemExit) as exit_info:
        prepare.main(["--params", str(params), "--output", str(tmp_path / "dataset")])
    assert exit_info.value.code == 2
    assert "prepare: error: params.yaml: dataset.background = 'ignore': dataset 'cocostuff'" in capsys.readouterr().err
    assert not (tmp_path / "dataset").exists() and not list(tmp_path.glob(".dataset.partial-*"))


def test_the_cocostuff_preset_refuses_ignore_and_writes_nothing(tmp_path, capsys):
    weights, vectors = tmp_path / "resnet101.pth", tmp_path / "cocostuff_word2vec_300.npy"
    weights.write_bytes(b"")
    np.save(vectors, np.ones((171, 300), dtype=np.float32))
    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    with pytest.raises(SystemExit):
        apply(tmp_path, "cocostuff", f"dataset.root={tmp_path}", f"backbone.weights={weights}",
              f"embed.path={vectors}", "dataset.background=ignore")
    assert "dataset 'cocostuff' has no background class to ignore" in capsys.readouterr().err
    assert (tmp_path / "params.yaml").read_text() == (PROJECT_ROOT / "params.yaml").read_text()


# --- CaGNet's Pascal-Context split ----------------------------------------------------------------------

# github.com/bcmi/CaGNet-Zero-Shot-Semantic-Segmentation, dataset/context/labels.txt (1..33), and its
# split/novel_cls.npy [10, 14, 18, 8]: written out here, independently of the code under test.
CAGNET_LABELS = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
                 "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor", "sky",
                 "grass", "ground", "road", "building", "tree", "water", "mountain", "wall", "floor", "track",
                 "keyboard", "ceiling"]
CAGNET_NOVEL = [10, 14, 18, 8]


def test_context33_is_cagnets_33_classes_and_every_other_pixel_is_class_0(tmp_path):
    tree = write_context_tree(tmp_path / "context")
    prepare_context(tmp_path / "context", tmp_path / "c59", 1, print)
    prepare_context33(tmp_path / "context", tmp_path / "c33", 1, print)
    dataset = FolderDataset(tmp_path / "c33")
    assert list(dataset.class_names) == ["background", *CAGNET_LABELS]
    assert [dataset.class_names.index(name) for name in dataset.unseen_order] == CAGNET_NOVEL
    assert set(CAGNET_LABELS) <= set(CONTEXT_NAMES)
    to_33 = np.zeros(256, dtype=np.uint8)
    to_33[255] = 255
    for index, name in enumerate(CONTEXT_NAMES):
        if name in CAGNET_LABELS:
            to_33[index] = CAGNET_LABELS.index(name) + 1
    for image_id in tree["splits"]["train"] + tree["splits"]["val"]:
        label59 = FolderDataset(tmp_path / "c59").load_label(image_id)
        np.testing.assert_array_equal(dataset.load_label(image_id), to_33[label59])
    # The 26 classes of the 59 that CaGNet dropped become class 0, as a label outside the 59 does; ignore then
    # ignores them with background.
    full_names = tree["full_names"]
    table = context_index_map(full_names, ["background", *CAGNET_LABELS], tmp_path / "labels.txt")
    for name in ("bag", "bedclothes", "sidewalk", "wood", "accordion"):
        assert table[full_names.index(name) + 1] == 0, name
    assert table[full_names.index("table") + 1] == CAGNET_LABELS.index("diningtable") + 1
    split = FolderDataset(tmp_path / "c33", "ignore").class_split(4)
    assert [split.names[c] for c in split.unseen] == ["cow", "motorbike", "sofa", "cat"] and len(split.seen) == 29


def test_the_grid_refuses_an_explicit_split_it_would_not_run(labelled_dataset, tmp_path):
    root, _, _ = labelled_dataset
    dataset = FolderDataset(root)
    dataset.check_grid_split(1, [1])
    dataset.check_grid_split(["cow"], [1])
    with pytest.raises(DatasetError, match=r"the K grid \(table.k_values = \[1, 2\]\) runs the first K classes"):
        dataset.check_grid_split(["cow"], [1, 2])
    with pytest.raises(DatasetError, match="run this split as the single run"):
        dataset.check_grid_split(["dog"], [1])


# --- the presets ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", ("voc15", "context-cagnet"))
def test_a_protocol_preset_holds_only_what_differs_from_params_yaml(preset):
    import yaml

    base = leaves(yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text()))
    overlay = leaves(yaml.safe_load((PRESETS_DIRECTORY / f"{preset}.yaml").read_text()))
    assert overlay and set(overlay) <= set(base)
    assert [key for key, value in overlay.items() if base[key] == value] == []
    assert overlay["dataset.background"] == "ignore"


def test_the_voc15_preset_gives_spnets_split_with_background_ignored(tmp_path):
    weights = tmp_path / "resnet101.pth"
    weights.write_bytes(b"")
    params = load_params(apply(tmp_path, "voc15", f"dataset.root={tmp_path}", f"backbone.weights={weights}",
                               f"embed.path={WORD2VEC / 'voc_word2vec_300.npy'}"))
    assert params.dataset.name == "voc" and params.dataset.background == "ignore"
    # SPNet's novel_cls.npy (16..20), in the VOC adapter's spelling.
    assert params.dataset.unseen == ["pottedplant", "sheep", "sofa", "train", "tvmonitor"]
    from zsseg.datasets.voc import CLASS_NAMES

    assert [CLASS_NAMES.index(name) for name in params.dataset.unseen] == [16, 17, 18, 19, 20]
    assert params.backbone.arch == "deeplabv3plus_resnet101" and params.embed.source == "word2vec"
    assert "background: ignore" in (tmp_path / "params.yaml").read_text()


def test_the_context_cagnet_preset_gives_cagnets_split(tmp_path):
    weights, vectors = tmp_path / "resnet101.pth", tmp_path / "context33_word2vec_300.npy"
    weights.write_bytes(b"")
    np.save(vectors, np.ones((34, 300), dtype=np.float32))
    params = load_params(apply(tmp_path, "context-cagnet", f"dataset.root={tmp_path}", f"backbone.weights={weights}",
                               f"embed.path={vectors}"))
    assert (params.dataset.name, params.dataset.background) == ("context33", "ignore")
    assert params.dataset.unseen == ["cow", "motorbike", "sofa", "cat"] and params.table.k_values == [4]
    assert params.self_training.top_percent == 75


# --- a tiny run with background ignored -----------------------------------------------------------------

@pytest.mark.pipeline
def test_tiny_run_with_background_ignored_counts_no_background_anywhere(tmp_path):
    """Every stage up to evaluate with dataset.background: ignore: no background in the backbone's classes, the
    labelled cache, the samples or the ceiling's labels; every classifier masks it; no metrics file counts it."""
    import h5py

    from zsseg.classifier import load_classifier
    from zsseg.datasets.demo import write_demo_dataset
    from zsseg.methods import results
    from zsseg.network import NETWORK_FILE
    from zsseg.checkpoints import load_weights_only

    root = tmp_path / "demo"
    write_demo_dataset(root, train_images=24, val_images=6, image_size=64, min_objects=2, max_objects=3, seed=11,
                       dev_images=4)
    params = write_params(tmp_path / "params.yaml", tiny_params(**{
        "dataset.name": "folder", "dataset.root": str(root), "dataset.unseen": 3, "dataset.background": "ignore",
        "recursion.threshold": 0.05, "recursion.allow_empty_rounds": True}))
    data = tmp_path / "data"
    from zsseg.pipeline import RUN, SHARED, STAGES

    run_stages_in_process(params, data, (*(entry.name for entry in STAGES if entry.scope in (SHARED, RUN)
                                           and entry.name != "demo"), "report"))
    title = (data / "report" / "summary.md").read_text().splitlines()[0]
    assert title.endswith("; background ignored (SPNet/CaGNet protocol))"), title
    names = FolderDataset(data / "dataset").class_names
    assert load_weights_only(data / "backbone" / NETWORK_FILE)["seen"] == [
        c for c in range(1, len(names)) if c not in FolderDataset(data / "dataset").class_split(3).unseen]
    with h5py.File(data / "features" / "labelled.h5", "r") as handle:
        assert 0 not in set(np.unique(handle["feature_labels"][:])) and handle["feature_labels"].shape[0] > 0
    with h5py.File(data / "samples.h5", "r") as handle:
        assert 0 not in set(np.unique(handle["generator"]["classes"][:]))
    with h5py.File(data / "ceiling_labels.h5", "r") as handle:
        assert 0 not in set(np.unique(handle["feature_labels"][:]))
    for result in results([1]):
        assert is_masked(load_classifier(data / result.directory), 0), result.directory
    metrics_files = sorted((data / "metrics").glob("*.json")) + sorted((data / "dev_metrics").glob("*.json"))
    assert len(metrics_files) >= 2 * len(results([1]))
    for path in metrics_files:
        metrics = json.loads(path.read_text())
        assert metrics["per_class_iou"]["background"] is None, path
        seen = [value for name, value in metrics["per_class_iou"].items()
                if name != "background" and name not in metrics["unseen_classes"] and value is not None]
        assert metrics["seen_miou"] == pytest.approx(sum(seen) / len(seen), abs=1e-3), path
    for path in (data / "confusion").glob("*.csv"):
        rows = list(csv.reader(path.open()))
        assert rows[1][0] == "background" and set(rows[1][1:]) == {"0"}          # no background pixel counted
        assert {row[1] for row in rows[1:]} == {"0"}                             # none predicted as background
    print(json.dumps({path.stem: {key: json.loads(path.read_text())[key] for key in ("seen_miou", "unseen_miou",
                                                                                       "hiou")}
                      for path in sorted((data / "metrics").glob("*.json"))}))
