"""Every stage runs on the same thread count under DVC and under Snakemake, so the engines write the same bytes.

What a stage writes depends on its thread count: the network's float sums on every CPU, and on some CPUs
the small models' training too (on an AMD EPYC, a generator step and the classifier's training give other
bytes on one thread than on two). So the guarantee is not that one thread equals two. It is that both
engines run each stage on the count that zsseg/pipeline.py declares for it: `threads` from params.yaml, or
SMALL_MODEL_THREADS for the stages that train small models. These tests read that count from what each
engine really runs (the commands DVC resolves from dvc.yaml, and Snakemake's dry run), run the small models
on each engine's count and compare the bytes. A control shows, on any CPU, that the comparison fails when
the engines' counts differ: a deliberately thread-dependent reduction must give other bytes there.
"""

import importlib
import os
import re
import shlex
import subprocess
import sys

import pytest
from dvc.repo import Repo

from conftest import PROJECT_ROOT
from zsseg import pipeline
from zsseg.config import load_params, parse_assignment
from zsseg.stage import stage_parser

BIN = sys.executable.rsplit("/", 1)[0]

SMALL_MODELS = """
import hashlib, sys, torch
from zsseg.config import GeneratorParams, ClassifierParams
from zsseg.generator import FeatureGenerator, generate_features, train_generator
from zsseg.classifier import train_classifier
from zsseg.dense_prediction import dense_labels
torch.set_num_threads(int(sys.argv[1]))
seed = int(sys.argv[2])
rng = torch.Generator().manual_seed(seed)
torch.manual_seed(seed)
embeddings = torch.randn(10, 48, generator=rng)
real = {c: torch.randn(400, 64, generator=rng) + c for c in range(6)}
pseudo = {c: (torch.randn(300, 64, generator=rng) + c, torch.rand(300, generator=rng)) for c in (6, 7)}
generator = FeatureGenerator(48, 32, 128, 64, 0.5, init="xavier")
params = GeneratorParams(noise_dim=32, hidden_dim=128, dropout=0.5, bandwidths=[2.0, 5.0, 10.0, 20.0, 40.0, 80.0],
                         steps=30, learning_rate=0.003, samples_per_class=64, real_features_per_class=400,
                         noise="normal", init="xavier")
train_generator(generator, embeddings, real, params, 30, seed, torch.device("cpu"), "test", pseudo, 1.0)
generated = generate_features(generator, embeddings, [6, 7, 8, 9], 2000, seed, torch.device("cpu"), "test")
classifier, _ = train_classifier({**real, **generated}, 10, ClassifierParams(
    epochs=3, batch_size=256, learning_rate=0.001, generated_per_class=2000, sampling="balanced", unseen_weight=1.0),
    seed, torch.device("cpu"), "test", [6, 7, 8, 9])
labels = dense_labels(classifier, torch.randn(16, 16, 16, 64, generator=rng), (128, 128), torch.device("cpu"), "test")
digest = hashlib.sha256()
for tensor in [*generator.state_dict().values(), *generated.values(), *classifier.state_dict().values(), labels]:
    digest.update(tensor.numpy().tobytes())
print(digest.hexdigest())
"""

# The test double: a sum whose order follows the thread count, one partial sum per thread.
THREAD_DEPENDENT = """
import hashlib, sys, torch
torch.set_num_threads(int(sys.argv[1]))
values = torch.randn(1_000_000, generator=torch.Generator().manual_seed(int(sys.argv[2])))
total = torch.stack([part.sum() for part in values.chunk(torch.get_num_threads())]).sum()
print(hashlib.sha256(total.numpy().tobytes()).hexdigest())
"""


def process_threads(command: str) -> int | None:
    """The thread count a stage's process runs on, as stage_run computes it: params.yaml's `threads` with the
    command's --set values. None for a stage whose module does not read `threads`."""
    words = shlex.split(command.split(" 2>&1")[0])
    module = importlib.import_module(words[words.index("-m") + 1])
    if "threads" not in module.PARAMS:
        return None
    args = stage_parser(None, module.ARGUMENTS).parse_args(words[words.index("-m") + 2:])
    return load_params(PROJECT_ROOT / args.params, dict(map(parse_assignment, args.overrides))).threads


def dvc_threads() -> dict[str, int | None]:
    """Stage -> its process's thread count, from the commands DVC resolves from dvc.yaml."""
    found: dict[str, set] = {}
    for stage in Repo(str(PROJECT_ROOT)).index.stages:
        found.setdefault(stage.addressing.split("@")[0], set()).add(process_threads(stage.cmd))
    assert all(len(counts) == 1 for counts in found.values()), found
    return {name: counts.pop() for name, counts in found.items()}


def snakemake_threads() -> dict[str, set[tuple[int, int | None]]]:
    """Stage -> every (threads Snakemake schedules, thread count of the process) of its jobs, in a forced dry
    run of the single split and of the K grid."""
    found: dict[str, set] = {}
    for target in ("all", "table"):
        dry_run = subprocess.run([f"{BIN}/snakemake", "-n", "-p", "--forceall", target], cwd=PROJECT_ROOT,
                                 capture_output=True, text=True, check=True).stdout
        for block in dry_run.split("\nrule ")[1:]:
            rule = block.split(":", 1)[0]
            if rule == "all":
                continue
            scheduled = re.search(r"^\s+threads: (\d+)$", block, flags=re.M)
            command = re.search(r"^Shell command: (.*)$", block, flags=re.M).group(1)
            stage = rule.removesuffix("_k")
            found.setdefault(stage, set()).add((int(scheduled.group(1)) if scheduled else 1,
                                                process_threads(command)))
    return found


@pytest.fixture(scope="module")
def engine_threads():
    return dvc_threads(), snakemake_threads()


def test_both_engines_run_every_stage_on_the_thread_count_its_declaration_gives(engine_threads):
    dvc, snakemake = engine_threads
    config_threads = load_params(PROJECT_ROOT / "params.yaml").threads
    assert set(snakemake) == {entry.name for entry in pipeline.STAGES}
    assert set(dvc) == {entry.name for entry in pipeline.STAGES if entry.scope != pipeline.GRID}
    for entry in pipeline.STAGES:
        declared = entry.threads or config_threads
        reads_threads = "threads" in pipeline.declared_params(entry.module)
        # Snakemake schedules the threads the stage runs on: no oversubscription, and on Slurm its --cpus-per-task.
        assert snakemake[entry.name] == {(declared, declared if reads_threads else None)}, entry.name
        if entry.scope != pipeline.GRID:
            assert dvc[entry.name] == (declared if reads_threads else None), entry.name
    # The small models' count is not params.yaml's: a command that lost its --set would be caught above.
    assert config_threads != pipeline.SMALL_MODEL_THREADS
    assert dvc["round_0"] == pipeline.SMALL_MODEL_THREADS


def _digest(script: str, threads: int, seed: int) -> str:
    return subprocess.run([sys.executable, "-c", script, str(threads), str(seed)], capture_output=True,
                          text=True, check=True, cwd=PROJECT_ROOT).stdout.strip()


def engines_write_the_same_bytes(script: str, dvc_count: int, snakemake_count: int) -> str | None:
    """The digest both engines' thread counts give, or None when they give different bytes."""
    under_dvc = _digest(script, dvc_count, 0)
    return under_dvc if under_dvc == _digest(script, snakemake_count, 0) else None


def test_the_small_models_give_the_same_bytes_under_both_engines(engine_threads):
    dvc, snakemake = engine_threads
    pairs = {(dvc[method.stage], process) for method in pipeline.METHODS for _, process in snakemake[method.stage]}
    for dvc_count, snakemake_count in pairs:
        digest = engines_write_the_same_bytes(SMALL_MODELS, dvc_count, snakemake_count)
        assert digest is not None, (dvc_count, snakemake_count)
    # The digest covers what the seed changes: a different seed gives different bytes.
    assert _digest(SMALL_MODELS, dvc_count, 1) != digest


def test_control_the_comparison_fails_when_the_engines_counts_differ():
    """The design before this test's form: DVC gave the small models params.yaml's two threads, Snakemake
    one. With a deliberately thread-dependent reduction, the comparison must tell that pair apart."""
    assert engines_write_the_same_bytes(THREAD_DEPENDENT, 2, 1) is None


def test_a_stage_runs_on_its_declared_count_whatever_threads_the_engine_allots():
    """Snakemake sets OMP_NUM_THREADS and MKL_NUM_THREADS to a job's threads, fewer than declared under
    `--cores 1`; the stage's own torch.set_num_threads (zsseg/runtime.py) decides all the same. The
    control, torch without that call, shows that the variables do act."""
    allotted_one = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def torch_threads(setup: str) -> int:
        script = f"import torch\n{setup}\nprint(torch.get_num_threads())"
        return int(subprocess.run([sys.executable, "-c", script], env=allotted_one, capture_output=True, text=True,
                                  check=True, cwd=PROJECT_ROOT).stdout)

    assert torch_threads("from zsseg.runtime import configure_torch; configure_torch(2, 0)") == 2
    assert torch_threads("") == 1
