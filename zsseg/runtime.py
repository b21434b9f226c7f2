"""Device choice, seeding and logging shared by every stage."""

from __future__ import annotations

import logging
from collections.abc import Callable
import os
import random
import sys

import numpy as np
import torch


class DeviceError(RuntimeError):
    """The requested device is not available."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is an error, never a silent fall-back."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("params.yaml: device = 'cuda' but no CUDA device is available; use auto or cpu")
    if name not in ("cpu", "cuda"):
        raise DeviceError(f"params.yaml: device = {name!r}: expected auto, cpu or cuda")
    return torch.device(name)


def configure_torch(threads: int, seed: int) -> None:
    """Fix the thread count and seeds, and ask torch for deterministic kernels.

    The thread count is part of the result: it sets the order of float reductions on the CPU.
    """
    torch.set_num_threads(threads)
    seed_everything(seed)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        # Only CUDA has non-deterministic kernels to switch off; on the CPU the switch would cost
        # seconds of imports per stage and change nothing.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def stage_logger(stage: str) -> logging.Logger:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    return logging.getLogger(stage)


def run_stage(stage: str, body: Callable[[], None], errors: tuple[type[Exception], ...] = ()) -> None:
    """Run a stage body; a known input problem (or one of the stage's own ``errors``) ends it with a
    one-line message and exit status 2."""
    from zsseg.config import ParamsError
    from zsseg.datasets import DatasetError
    from zsseg.embeddings import EmbeddingError
    from zsseg.feature_cache import CacheError

    try:
        body()
    except (ParamsError, DatasetError, EmbeddingError, CacheError, DeviceError, FloatingPointError,
            FileNotFoundError, *errors) as error:
        print(f"{stage}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
