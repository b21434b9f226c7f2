"""Every method stage computes on the device it is given.

No GPU here, so CUDA is simulated: ``device: cuda`` resolves as if a GPU were present, a tensor created on or
moved to it is computed on the CPU but marked, and every operation is checked as CUDA would check it. An
operation that mixes a marked tensor with an unmarked one of one element or more fails on a real GPU
("Expected all tensors to be on the same device"); a matrix product, distance or loss on unmarked tensors
runs on the CPU while the GPU idles. The stages' outputs must also be byte-identical to the CPU run's: the
same arithmetic, only the device differs.
"""

import hashlib
import os
import traceback
import weakref
from pathlib import Path

import pytest
import torch
import yaml
from torch.overrides import TorchFunctionMode

from conftest import mining_dataset, run_stages_in_process, write_params
from zsseg.methods import METHODS

PREREQUISITES = ("prepare", "embed", "encode", "backbone", "features", "samples", "ceiling_labels")
METHOD_STAGES = tuple(dict.fromkeys(method.stage for method in METHODS))
# What a GPU is there to do: an operation on unmarked tensors among these runs on the CPU instead.
HEAVY = {"linear", "matmul", "__matmul__", "mm", "addmm", "bmm", "cdist", "einsum", "cross_entropy", "softmax",
         "log_softmax", "conv2d"}
# Operations that CUDA allows across devices: moves and copies, attribute access, and indexing a GPU tensor
# with a CPU index.
# `tensor.device`, which reads cuda for a marked tensor.
DEVICE_OF = torch.Tensor.device.__get__
CROSSING = {"to", "cpu", "copy_", "__get__", "__set__", "__getitem__", "_has_compatible_shallow_copy_type"}


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _is_cuda(value) -> bool:
    return (isinstance(value, torch.device) and value.type == "cuda") or (isinstance(value, str)
                                                                          and value.startswith("cuda"))


def _caller() -> str:
    """The project's line that called the operation."""
    for frame in reversed(traceback.extract_stack()):
        if "/zsseg/" in frame.filename or "/stages/" in frame.filename:
            return f"{Path(frame.filename).parent.name}/{Path(frame.filename).name}:{frame.lineno}"
    return "the test"


def _is_cpu(value) -> bool:
    return (isinstance(value, torch.device) and value.type == "cpu") or value == "cpu"


class SimulatedCuda(TorchFunctionMode):
    """CUDA tensors as marked CPU tensors; ``mixed`` and ``on_cpu`` collect what a real GPU would refuse or
    leave to the CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.marked = weakref.WeakValueDictionary()   # id -> tensor: ids die with their tensors
        self.mixed: list[str] = []
        self.on_cpu: list[str] = []
        self.on_device = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", str(func))
        if func == DEVICE_OF and id(args[0]) in self.marked:
            return torch.device("cuda", 0)
        to_cuda = _is_cuda(kwargs.get("device")) or any(_is_cuda(arg) for arg in args[1:]) or name == "cuda"
        to_cpu = name == "cpu" or (name == "to" and any(_is_cpu(arg) for arg in (*args[1:], kwargs.get("device"))))
        if to_cuda:
            kwargs = {key: "cpu" if _is_cuda(value) else value for key, value in kwargs.items()}
            args = tuple("cpu" if _is_cuda(arg) else arg for arg in args)
            if name == "cuda":
                func, args = torch.Tensor.cpu, args[:1]
        # Indexing a CUDA tensor with a CPU index, and `tensor[slices] = value` (a copy), are allowed.
        if name == "__setitem__":
            inputs = [] if not any(isinstance(item, torch.Tensor) for item in _tensors(args[1:2])) else \
                list(_tensors(args[:1] + args[2:]))
        else:
            inputs = list(_tensors(args)) + list(_tensors(kwargs))
        marked = [tensor for tensor in inputs if id(tensor) in self.marked]
        unmarked = [tensor for tensor in inputs if id(tensor) not in self.marked and tensor.dim() > 0]
        if marked and unmarked and name not in CROSSING:
            self.mixed.append(f"{name} at {_caller()}")
        if name == "numpy" and marked:
            self.mixed.append(f"numpy of a CUDA tensor at {_caller()}")
        if name in HEAVY:
            if marked:
                self.on_device += 1
            else:
                self.on_cpu.append(f"{name} at {_caller()}")
        result = func(*args, **kwargs)
        if name == "__set__" and len(args) == 2 and id(args[1]) in self.marked:
            self.marked[id(args[0])] = args[0]
        if to_cuda or to_cpu:
            # On the CPU a move returns the same tensor; on a GPU another one, on the other device.
            if result is args[0]:
                result = result.view_as(result)
            if to_cuda:
                self.marked[id(result)] = result
        elif marked:
            for tensor in _tensors(result):
                self.marked[id(tensor)] = tensor
        return result


def digests(directory):
    return {str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(directory.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny run's features, samples and labels, computed on the CPU once."""
    workdir = tmp_path_factory.mktemp("devices")
    _, params = mining_dataset(workdir)
    run_stages_in_process(params, workdir / "data", PREREQUISITES)
    return workdir


def run_methods(workdir, device: str):
    data = yaml.safe_load((workdir / "params.yaml").read_text())
    params = write_params(workdir / f"params_{device}.yaml", {**data, "device": device})
    run_stages_in_process(params, workdir / "data", METHOD_STAGES)
    outputs = {}
    for method in METHODS:
        directory = workdir / "data" / method.stage_output.split("/{")[0]
        outputs.update({f"{directory.name}/{name}": digest for name, digest in digests(directory).items()})
    return outputs


def test_every_method_stage_computes_on_the_cuda_device_it_is_given(trained_run, monkeypatch):
    on_cpu = run_methods(trained_run, "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    environment = dict(os.environ)
    simulated = SimulatedCuda()
    try:
        with simulated:
            on_cuda = run_methods(trained_run, "cuda")
    finally:
        # seed_everything switches on deterministic kernels for CUDA, for the rest of the process.
        torch.use_deterministic_algorithms(False)
        os.environ.clear()
        os.environ.update(environment)
    assert simulated.mixed == [], f"operations that mix devices: {sorted(set(simulated.mixed))}"
    assert simulated.on_cpu == [], f"heavy operations left on the CPU: {sorted(set(simulated.on_cpu))}"
    assert simulated.on_device > 100
    assert on_cuda == on_cpu


def test_the_simulation_catches_a_tensor_left_on_the_cpu_and_a_product_on_the_cpu(monkeypatch):
    """The control: the two mistakes the test above looks for, made on purpose."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    simulated = SimulatedCuda()
    with simulated:
        device = torch.device("cuda")
        weights = torch.nn.Linear(4, 3).to(device)
        inputs = torch.randn(5, 4).to(device)
        weights(inputs).sum().backward()
        assert simulated.mixed == [] and simulated.on_cpu == [] and simulated.on_device == 1
        offsets = torch.ones(5, 3)                      # made on the CPU, then added to a CUDA tensor
        weights(inputs) + offsets
        torch.randn(5, 4) @ torch.randn(4, 3)           # a product computed on the CPU
    assert simulated.mixed == ["add at the test"]
    assert simulated.on_cpu == ["matmul at the test"]
