"""What this machine offers the jobs that share it: its memory and GPUs, and which GPU a job takes.

A local Snakemake run holds no more ``mem_mb`` and ``gpu`` than :func:`machine_resources` reports (the
Snakefile declares them when the command line does not), so that jobs never oversubscribe the machine. A
job that asks for a GPU on a machine with several takes the first one no other job holds
(:func:`claim_gpu`); on Slurm each job sees only the GPU it was given. No torch here: the Snakefile imports
this module on every run.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

# The files other processes' claims are held on: one per GPU, named by its UUID.
GPU_LOCKS = Path("/tmp/zsseg-gpu-locks")
# Kept open for the life of the process: the claim is released when the process ends, however it ends.
_held_claims: list[int] = []


def memory_mb(meminfo: Path = Path("/proc/meminfo"), cgroup: Path = Path("/sys/fs/cgroup/memory.max")) -> int:
    """The machine's memory in MB, or its container's limit (cgroup v2) when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = cgroup.read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total // 2**20


def gpu_count(environment: Mapping[str, str] = os.environ, driver: Path = Path("/proc/driver/nvidia/gpus")) -> int:
    """The GPUs a process started here can use: those CUDA_VISIBLE_DEVICES lists when it is set, else those
    NVIDIA's driver reports."""
    visible = environment.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        # CUDA stops at the first invalid entry; "" and "-1" hide every GPU.
        entries = []
        for entry in visible.split(","):
            if not entry.strip() or entry.strip().startswith("-"):
                break
            entries.append(entry)
        return len(entries)
    return len(list(driver.iterdir())) if driver.is_dir() else 0


def machine_resources() -> dict[str, int]:
    """Snakemake's global resources for a local run: the memory, and the GPUs when there are any (with none,
    a job that asks for one runs on the CPU under ``device: auto``, or stops with the device error under
    ``cuda``)."""
    gpus = gpu_count()
    return {"mem_mb": memory_mb(), **({"gpu": gpus} if gpus else {})}


def claim_gpu(identifiers: Sequence[str], locks: Path = GPU_LOCKS) -> int | None:
    """The index of the first GPU (by its identifier) that no other process on this machine holds, held by
    this process until it ends; None when every one is held."""
    locks.mkdir(parents=True, exist_ok=True)
    for index, identifier in enumerate(identifiers):
        handle = os.open(locks / f"{identifier}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            continue
        _held_claims.append(handle)
        return index
    return None
