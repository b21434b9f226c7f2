"""The backbone training's resume state: a training stopped at any point and resumed from the saved file ends
with the same bytes as one that ran through; a resume state from other params, or a corrupt one, is refused
and left alone; and a real SIGKILL of the demo's backbone under DVC and under Snakemake, rerun, resumes."""

import dataclasses
import filecmp
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_params, write_folder_dataset, write_params
from pipeline_runs import ENV, kill_mid_stage, project_clone, run
from stages.backbone import main as backbone_stage
from zsseg.backbone_training import train_segmentation_network
from zsseg.config import load_params
from zsseg.datasets.folder import FolderDataset
from zsseg.encoder_maps import write_encoder_maps
from zsseg.network import SegmentationNetwork, weights_of
from zsseg.resume_state import ResumeStateError, TrainingCheckpoint, resume_params_hash, resume_state_path
from zsseg.runtime import seed_everything

CPU = torch.device("cpu")
PARAMS_HASH = "0123456789abcdef"
EPOCHS, STEPS_PER_EPOCH = 3, 3
NEVER = float("inf")     # an interval at which only the epochs' ends save
ALWAYS = 0.0             # an interval at which every step saves


class Killed(Exception):
    """Stands for SIGKILL: the training stops where it is, with its resume state on disk."""


class KilledAfterSave(TrainingCheckpoint):
    """Stops the training right after saving the state at ``at`` = (epoch, batches done), both 0-based."""

    def __init__(self, path: Path, interval_seconds: float, at: tuple[int, int]) -> None:
        super().__init__(path, PARAMS_HASH, interval_seconds, log=print)
        self.at = at

    def save(self, state: dict) -> None:
        super().save(state)
        if (state["epoch"], state["batches_done"]) == self.at:
            raise Killed


class KilledAfterSteps(TrainingCheckpoint):
    """Stops the training ``steps`` steps after it started, whenever it last saved: the steps since are lost."""

    def __init__(self, path: Path, steps: int) -> None:
        super().__init__(path, PARAMS_HASH, NEVER, log=print)
        self.steps = steps

    def due(self) -> bool:
        # Asked after every step but an epoch's last.
        self.steps -= 1
        if self.steps == 0:
            raise Killed
        return super().due()


def write_training_dataset(root: Path) -> Path:
    """Six 32x32 training images of background and cats (dog, the unseen class, only in val), two val."""
    rng = np.random.default_rng(0)
    splits = {}
    for split, count in (("train", 6), ("val", 2)):
        items = {}
        for index in range(count):
            image = rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
            label = np.zeros((32, 32), dtype=np.uint8)
            top, left = rng.integers(0, 20, size=2)
            label[top:top + 12, left:left + 10] = 1
            label[0, :] = 255
            if split == "val":
                label[28:, 28:] = 2
            items[f"{split}{index}"] = (image, label)
        splits[split] = items
    return write_folder_dataset(root / "dataset", ["background", "cat", "dog"], splits, ["dog"])


@pytest.fixture
def training_dataset(tmp_path):
    return write_training_dataset(tmp_path)


def backbone_params(**changes):
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml").backbone
    small = {"feature_dim": 16, "epochs": EPOCHS, "batch_size": 2, **changes}
    return dataclasses.replace(params, **small)


# The two training paths: whole images through the frozen encoder (the demo's), and augmented crops through
# a DataLoader with the whole network training (SGD, to cover its momentum); its workers get the epoch with
# each item, so two persistent workers give what the main process does.
PATHS = {
    "frozen encoder": backbone_params(),
    "crops": backbone_params(crop_size=32, freeze_encoder=False, share_encoder_maps=False, optimizer="sgd",
                             learning_rate=0.01),
    "crops, two workers": backbone_params(crop_size=32, freeze_encoder=False, share_encoder_maps=False,
                                          optimizer="sgd", learning_rate=0.01, workers=2),
}


def train(root: Path, backbone, checkpoint: TrainingCheckpoint | None = None):
    """The network and log the backbone stage would train, seeded as the stage seeds it."""
    seed_everything(0)
    dataset = FolderDataset(root)
    split = dataset.class_split(["dog"])
    network = SegmentationNetwork(backbone.arch, len(split.seen), backbone.feature_dim, backbone.aspp_rates,
                                  weights_of(backbone))
    log = train_segmentation_network(network, dataset, dataset.ids("train"), split, backbone, 0, CPU, None,
                                     checkpoint)
    return network, log


def same_weights(one: torch.nn.Module, other: torch.nn.Module) -> bool:
    first, second = one.state_dict(), other.state_dict()
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Each path trained through once, without a resume state."""
    root = write_training_dataset(tmp_path_factory.mktemp("uninterrupted"))
    return {name: train(root, PATHS[name]) for name in ("frozen encoder", "crops")}


KILLS = {
    # (how often it saves, the saved state it is killed after: epoch and batches done, 0-based)
    "mid-epoch": (ALWAYS, (1, 1)),
    "at an epoch's end": (NEVER, (2, 0)),
}


@pytest.mark.parametrize("kill", KILLS)
@pytest.mark.parametrize("path", PATHS)
def test_a_resumed_training_ends_with_the_same_bytes(training_dataset, tmp_path, uninterrupted, path, kill):
    interval, at = KILLS[kill]
    state = tmp_path / "backbone.resume.pt"
    with pytest.raises(Killed):
        train(training_dataset, PATHS[path], KilledAfterSave(state, interval, at))
    lines = []
    network, log = train(training_dataset, PATHS[path], TrainingCheckpoint(state, PARAMS_HASH, NEVER, lines.append))
    reference, reference_log = uninterrupted[path.removesuffix(", two workers")]
    assert same_weights(network, reference) and log == reference_log
    # 1-based: the epoch and step that ran first.
    assert len(lines) == 1 and re.fullmatch(
        rf"resuming from the training checkpoint {re.escape(str(state))}: epoch {at[0] + 1} of {EPOCHS}, "
        rf"step {at[1] + 1} of {STEPS_PER_EPOCH} \(written \d\d:\d\d:\d\d\)", lines[0])


@pytest.mark.parametrize("path", ("frozen encoder", "crops"))
def test_steps_after_the_last_save_are_trained_again_the_same(training_dataset, tmp_path, uninterrupted, path):
    state = tmp_path / "backbone.resume.pt"
    with pytest.raises(Killed):
        # Killed after epoch 1's second step: the state saved at the end of epoch 0 is what is left.
        train(training_dataset, PATHS[path], KilledAfterSteps(state, STEPS_PER_EPOCH - 1 + 2))
    assert torch.load(state, weights_only=True)["epoch"] == 1
    network, log = train(training_dataset, PATHS[path], TrainingCheckpoint(state, PARAMS_HASH, NEVER, print))
    assert same_weights(network, uninterrupted[path][0]) and log == uninterrupted[path][1]


def one_more_draw(generator_state: torch.Tensor) -> torch.Tensor:
    generator = torch.Generator()
    generator.set_state(generator_state)
    torch.rand(1, generator=generator)
    return generator.get_state()


# Controls: each of these is what a resume that misses one random state would continue with.
WRONG_STATES = {
    "dropout's generator not restored": lambda state: state["random"].update(torch=torch.Generator().get_state()),
    "the epoch's generator off by one draw": lambda state: state.update(
        epoch_generator=one_more_draw(state["epoch_generator"])),
}


@pytest.mark.parametrize("wrong", WRONG_STATES)
@pytest.mark.parametrize("path", ("frozen encoder", "crops"))
def test_control_a_resume_that_misses_a_random_state_ends_elsewhere(training_dataset, tmp_path, uninterrupted,
                                                                     path, wrong):
    state = tmp_path / "backbone.resume.pt"
    with pytest.raises(Killed):
        train(training_dataset, PATHS[path], KilledAfterSave(state, ALWAYS, (1, 1)))
    saved = torch.load(state, weights_only=True)
    WRONG_STATES[wrong](saved)
    torch.save(saved, state)
    network, _ = train(training_dataset, PATHS[path], TrainingCheckpoint(state, PARAMS_HASH, NEVER, print))
    assert not same_weights(network, uninterrupted[path][0])


def test_a_resume_state_of_other_params_is_refused_and_never_loaded(training_dataset, tmp_path):
    state = tmp_path / "backbone.resume.pt"
    with pytest.raises(Killed):
        train(training_dataset, PATHS["frozen encoder"], KilledAfterSave(state, ALWAYS, (1, 1)))
    written = state.read_bytes()
    seed_everything(0)
    dataset = FolderDataset(training_dataset)
    split = dataset.class_split(["dog"])
    backbone = PATHS["frozen encoder"]
    network = SegmentationNetwork(backbone.arch, len(split.seen), backbone.feature_dim, backbone.aspp_rates,
                                  weights_of(backbone))
    before = {key: value.clone() for key, value in network.state_dict().items()}
    with pytest.raises(ResumeStateError) as error:
        train_segmentation_network(network, dataset, dataset.ids("train"), split, backbone, 0, CPU, None,
                                   TrainingCheckpoint(state, "fedcba9876543210", NEVER, print))
    assert (f"{state}: the training checkpoint was written with params hash {PARAMS_HASH}, but the current params "
            f"(seed, threads, device, dataset, demo, backbone, less backbone.checkpoint_minutes) hash to "
            f"fedcba9876543210; refusing to resume from it: delete it to train from epoch 0, or restore the params "
            f"it was written with") == str(error.value)
    assert all(torch.equal(before[key], value) for key, value in network.state_dict().items())
    assert state.read_bytes() == written


def stage_inputs(tmp_path: Path, training_dataset: Path, name: str = "params.yaml", **changes) -> tuple[Path, Path]:
    """A params file for the backbone stage on the training dataset, and the encoder maps it reads."""
    params = write_params(tmp_path / name, tiny_params(
        **{"dataset.unseen": ["dog"], "backbone.feature_dim": 16, "backbone.batch_size": 2, **changes}))
    maps = tmp_path / "encoder_maps.h5"
    if not maps.exists():
        write_encoder_maps(load_params(params).backbone, FolderDataset(training_dataset), maps, 8, CPU)
    return params, maps


REFUSED = {
    "written with other params": r"the training checkpoint was written with params hash [0-9a-f]{16}, but the "
                                 r"current params \(.*\) hash to [0-9a-f]{16}; refusing to resume from it: delete "
                                 r"it to train from epoch 0, or restore the params it was written with",
    "written on another device": r"the training checkpoint was written on cuda, but this run is on cpu; delete it "
                                 r"to train from epoch 0, or run on cuda",
    "corrupt": r"the training checkpoint cannot be read \(\w+\); delete it to train from epoch 0",
}


@pytest.mark.parametrize("case", REFUSED)
def test_the_stage_refuses_a_resume_state_it_cannot_continue_from(training_dataset, tmp_path, capsys, case):
    params, maps = stage_inputs(tmp_path, training_dataset)
    output = tmp_path / "backbone"
    state = resume_state_path(output)
    if case == "corrupt":
        state.write_bytes(b"PK\x03\x04 not a whole zip archive")
    else:
        other = params
        if case == "written with other params":
            other, _ = stage_inputs(tmp_path, training_dataset, "other_params.yaml", **{"backbone.learning_rate": 0.01})
        checkpoint = KilledAfterSave(state, ALWAYS, (0, 1))
        checkpoint.params_hash = resume_params_hash(load_params(other))
        with pytest.raises(Killed):
            train(training_dataset, load_params(other).backbone, checkpoint)
        if case == "written on another device":
            saved = torch.load(state, weights_only=True)
            torch.save({**saved, "device": "cuda"}, state)
    written = state.read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        backbone_stage(["--params", str(params), "--dataset", str(training_dataset), "--encoder", str(maps),
                        "--output", str(output)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(rf"backbone: error: {re.escape(str(state))}: {REFUSED[case]}", error), error
    assert state.read_bytes() == written and not output.exists()


def test_the_stage_deletes_its_resume_state_once_its_output_is_written(training_dataset, tmp_path):
    params, maps = stage_inputs(tmp_path, training_dataset, **{"backbone.checkpoint_minutes": 1e-9})
    output = tmp_path / "backbone"
    backbone_stage(["--params", str(params), "--dataset", str(training_dataset), "--encoder", str(maps),
                    "--output", str(output)])
    assert (output / "network.pt").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["backbone", "dataset", "encoder_maps.h5",
                                                                "params.yaml"]


# --- the real kill ---------------------------------------------------------------------------------------------

# The demo, shrunk, with epochs of 16 steps that save after each: long enough for the third to be caught.
KILLED_DEMO = {"demo.train_images": 30, "demo.image_size": 64, "backbone.epochs": 3, "backbone.batch_size": 2,
               "backbone.checkpoint_minutes": 1e-9}
STATE = Path("data/backbone.resume.pt")


def saved_position(root: Path) -> tuple[int, int] | None:
    """(epoch, batches done), 0-based, of the resume state in ``root``, or None while there is none."""
    try:
        state = torch.load(root / STATE, map_location="cpu", weights_only=True)
    except (FileNotFoundError, RuntimeError, EOFError):
        return None
    return state["epoch"], state["batches_done"]


def killed_in_third_epoch(command: list[str], root: Path) -> tuple[int, int]:
    """Run ``command`` and SIGKILL its process group once the resume state is within the third epoch, one
    step or more into it; the position it was left at."""
    def in_third_epoch() -> bool:
        return (saved_position(root) or (0, 0)) >= (2, 1)

    kill_mid_stage(command, root, "backbone", "data/backbone", delay=0.0, until=in_third_epoch)
    position = saved_position(root)
    assert position is not None and position[0] == 2, f"the kill did not land in the third epoch: {position}"
    return position


def resume_line(output: str) -> str:
    return next((line for line in output.splitlines() if "resuming from the training checkpoint" in line),
                "no resume line in:\n" + output[-3000:])


def dvc_kill_and_rerun(base: Path) -> dict:
    root = project_clone(base / "dvc", **KILLED_DEMO)
    position = killed_in_third_epoch(["dvc", "repro", "backbone"], root)
    # Nothing to clean up first: DVC drops a dead process from its rwlock (with a warning) on the next run.
    rerun = subprocess.run(["dvc", "repro", "backbone"], cwd=root, env=ENV, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    return {"root": root, "position": position, "line": resume_line(rerun.stdout + rerun.stderr)}


def snakemake_kill_and_rerun(base: Path) -> dict:
    """The uninterrupted reference first, then the same backbone forced again, killed, unlocked and rerun."""
    root = project_clone(base / "snakemake", **KILLED_DEMO)
    run(["snakemake", "--cores", "2", "data/backbone"], root)
    reference = base / "uninterrupted"
    shutil.copytree(root / "data" / "backbone", reference)
    position = killed_in_third_epoch(["snakemake", "--cores", "2", "--forcerun", "backbone", "--", "data/backbone"],
                                     root)
    run(["snakemake", "--unlock"], root)
    run(["snakemake", "--cores", "2", "data/backbone"], root)
    return {"root": root, "position": position, "reference": reference,
            "line": resume_line((root / "data" / "logs" / "backbone.log").read_text())}


@pytest.mark.pipeline
def test_a_killed_demo_backbone_resumes_to_the_same_bytes_under_both_engines(tmp_path):
    results, errors = {}, []

    def chain(name, function):
        try:
            results[name] = function(tmp_path)
        except BaseException as error:  # reported below, from the test's own thread
            errors.append(error)

    # Side by side, as the tiny pipelines run (conftest.tiny_runs): much of their time is process start-up.
    threads = [threading.Thread(target=chain, args=item) for item in
               (("dvc", dvc_kill_and_rerun), ("snakemake", snakemake_kill_and_rerun))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    reference = results["snakemake"]["reference"]
    for name, result in results.items():
        epoch, batches_done = result["position"]
        print(f"{name}: killed with the resume state at epoch {epoch + 1}, step {batches_done + 1}; {result['line']}")
        assert re.search(rf"resuming from the training checkpoint {STATE}: epoch 3 of 3, step "
                         rf"{batches_done + 1} of \d+ \(written \d\d:\d\d:\d\d\)", result["line"]), result["line"]
        assert not (result["root"] / STATE).exists()
        for name_of_file in ("network.pt", "training_log.json"):
            assert filecmp.cmp(result["root"] / "data" / "backbone" / name_of_file, reference / name_of_file,
                               shallow=False), f"{name}: {name_of_file} differs from the uninterrupted run"
