"""Device choice, seeding and numerical precision shared by every stage.

torch is imported where it is used, so that stages without a network (demo, prepare) start fast.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import logging
import os
import random
import sys
from typing import TYPE_CHECKING

import numpy as np

from zsseg.errors import InputError
from zsseg.machine import claim_gpu

if TYPE_CHECKING:
    import torch


class DeviceError(InputError):
    """The requested device is not available."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is an error, never a silent fall-back. With
    several GPUs visible, the first one no other job on this machine holds (zsseg.machine.claim_gpu)."""
    import torch

    if name not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"params.yaml: device = {name!r}: expected auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("params.yaml: device = 'cuda' but no CUDA device is available; use auto or cpu")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if count == 1:
        return torch.device("cuda", 0)
    index = claim_gpu([str(torch.cuda.get_device_properties(i).uuid) for i in range(count)])
    if index is None:
        raise DeviceError(f"every one of the {count} visible GPUs is held by another job on this machine; run "
                          f"fewer GPU jobs at once (snakemake --resources gpu={count})")
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def configure_torch(threads: int, seed: int) -> None:
    """Fix the thread count and seeds, and ask torch for deterministic kernels.

    The thread count is part of the result: it sets the order of float reductions on the CPU.
    """
    import torch

    torch.set_num_threads(threads)
    seed_everything(seed)
    keep_freed_memory()


# mallopt's parameters (malloc.h) and its largest value, a C int.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, MALLOPT_MAX = -1, -3, 2**31 - 1


def keep_freed_memory() -> bool:
    """Let glibc keep freed buffers in the heap for the next batch instead of returning them to the OS.

    By default it maps every buffer over 32 MB afresh and unmaps it when freed, so each batch's tensors
    page-fault their memory in and the kernel zero-fills it again: 17 of the 22 s of the encode stage
    were system time. The arithmetic does not change; peak memory grows by what the heap keeps (encode:
    1.05 -> 1.46 GB). Returns False where the C library is not glibc (its allocator keeps its own policy).
    """
    try:
        # The process's own symbols include the C library's: no search for it (find_library runs ldconfig).
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MALLOPT_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, MALLOPT_MAX))


def exit_without_teardown() -> None:
    """End a finished stage's process with status 0, skipping Python's teardown.

    Tearing down the modules of a process that imported torch takes 0.5 s, in every stage and every round
    (measured: ``python -c "import torch"`` 1.85 s, with ``os._exit(0)`` at the end 1.32 s). By the time a
    stage's body returns, its outputs are closed and renamed into place, so teardown has nothing left to
    save; what remains buffered (log lines, progress bars) is flushed here. ``atexit`` handlers do not run,
    so under a profiler or tracer (cProfile, coverage), which write their results at exit, it returns.
    """
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        # Only CUDA has non-deterministic kernels to switch off; on the CPU the switch would cost
        # seconds of imports per stage and change nothing.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


class SeedPurpose(enum.IntEnum):
    """What a derived seed is for: one member per random draw of the pipeline, so that no two draws share a
    seed. A per-round draw takes the round as its index; the others use index 0."""

    BACKBONE = 0
    SEEN_SAMPLES = 1
    GENERATOR = 2
    GENERATED_FEATURES = 3
    CLASSIFIER = 4
    NATURAL_SAMPLES = 5
    MINING = 6
    CACHED_PIXELS = 7
    SELF_TRAINING_FEATURES = 8
    SELF_TRAINING_CLASSIFIER = 9
    CEILING_SAMPLES = 10
    CEILING_CLASSIFIER = 11
    PREDICT_SAMPLES = 12
    PREDICT_FEATURES = 13
    PREDICT_CLASSIFIER = 14


def derive_seed(base: int, purpose: SeedPurpose, index: int = 0) -> int:
    """Independent, reproducible seeds for each (purpose, index) from the one seed in params.yaml.

    The key always has two entries, passed as SeedSequence's spawn key: a variable-length entropy list would
    collide, since SeedSequence pads a short list with zeros (``[s, k, 0]`` and ``[s, k]`` give one seed)."""
    return int(np.random.SeedSequence(base, spawn_key=(int(purpose), index)).generate_state(1)[0])


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    import torch

    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def mixed_precision(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (no loss scaling needed, unlike fp16); a no-op on the CPU."""
    import torch

    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
