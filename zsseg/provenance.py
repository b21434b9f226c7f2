"""Where a result was computed: the machine and the package versions that set its last digits.

Floats differ between CPUs (instruction sets, and on some CPUs the thread count's effect on a reduction) and
between torch versions, so a reader who compares bytes across machines needs these to know why they differ.
The report and the K grid's table write them beside their tables (``provenance.json``, and a table in their
Markdown and HTML pages).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import torch

from zsseg.pipeline import SMALL_MODEL_THREADS

PACKAGES = ("zsseg", "torch", "numpy", "h5py", "pandas")


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name as the kernel reports it; the platform's processor string elsewhere."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_provenance(threads: int, device: torch.device) -> dict[str, str | int]:
    """The machine, its torch kernels' instruction set, the thread counts the stages ran with, and versions."""
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count() or 0,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_cuda": torch.version.cuda or "none",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "network_threads": threads,
        "small_model_threads": SMALL_MODEL_THREADS,
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{package: importlib.metadata.version(package) for package in PACKAGES},
    }

