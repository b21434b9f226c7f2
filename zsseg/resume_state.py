"""The backbone training's resume state, its training checkpoint (not ``backbone.checkpoint``, a ZS3Net network
loaded instead of training). docs/reliability.md, "Interrupted runs", says what it holds, when it is saved and
when it is refused.

It lies beside the stage's output directory, never inside it: DVC and Snakemake delete a declared output before
they run its stage, and Snakemake deletes an incomplete one. It is read as every model file is
(``zsseg.checkpoints.load_weights_only``): tensors, lists, dicts and numbers only, no pickled objects.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zsseg.atomic import atomic_path
from zsseg.checkpoints import load_weights_only
from zsseg.errors import InputError

FORMAT_VERSION = 1
# The params that change what the training computes: the backbone section, the dataset and the demo section
# that make its images, the seed, and the threads and device, on which the floats' last digits depend. Without
# backbone.checkpoint_minutes, which only says how often the state is saved: a rerun may change it and resume.
RESUME_PARAMS = ("seed", "threads", "device", "dataset", "demo", "backbone")
RESUME_PARAMS_LEFT_OUT = ("backbone.checkpoint_minutes",)


class ResumeStateError(InputError):
    """A resume state this training may not continue from: other params, another format or device, unreadable."""


def resume_state_path(output: str | os.PathLike) -> Path:
    """The resume state of the training that writes the directory ``output``: a sibling file."""
    output = Path(output)
    return output.with_name(f"{output.name}.resume.pt")


def resume_params_hash(params: Any) -> str:
    """The hash of ``RESUME_PARAMS`` (``params``: a stage's params), stored in the resume state."""
    return params.section_hash(*RESUME_PARAMS, without=RESUME_PARAMS_LEFT_OUT)


def global_random_states() -> dict:
    """The process-wide generators' states (torch's CPU generator, which dropout draws from, CUDA's where
    present, numpy's and Python's), as tensors, lists and numbers."""
    numpy_state = np.random.get_state(legacy=False)
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"key": numpy_state["state"]["key"].tolist(), "pos": int(numpy_state["state"]["pos"]),
                      "has_gauss": int(numpy_state["has_gauss"]), "gauss": float(numpy_state["gauss"])},
            "python": random.getstate()}


def set_global_random_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"]:
        torch.cuda.set_rng_state_all(states["cuda"])
    numpy_state = states["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": np.array(numpy_state["key"], dtype=np.uint32), "pos": numpy_state["pos"]},
                         "has_gauss": numpy_state["has_gauss"], "gauss": numpy_state["gauss"]})
    random.setstate(states["python"])


@dataclass
class TrainingCheckpoint:
    """Where a training keeps its resume state, how often it saves it, the params hash it must match, and
    where it says that it resumed."""

    path: Path
    params_hash: str
    interval_seconds: float
    log: Callable[[str], None]
    last_saved: float = field(default_factory=time.monotonic)

    def due(self) -> bool:
        """Whether ``interval_seconds`` have passed since the last save (or since the training started)."""
        return time.monotonic() - self.last_saved >= self.interval_seconds

    def save(self, state: dict) -> None:
        with atomic_path(self.path) as temporary:
            torch.save({"format": FORMAT_VERSION, "params_hash": self.params_hash, "written": time.time(), **state},
                       temporary)
        self.last_saved = time.monotonic()

    def load(self, device: torch.device) -> dict | None:
        """The saved state, on the CPU; None when there is none. One that other params, another format or
        another device wrote, or that cannot be read, is refused (ResumeStateError) and left in place."""
        if not self.path.exists():
            return None
        fresh_start = "delete it to train from epoch 0"
        try:
            state = load_weights_only(self.path)
        # Whatever the load raises (a truncated zip, a foreign pickle, an I/O error), the file cannot be used;
        # its type only, as the remedy is the same: start afresh.
        except Exception as error:
            raise ResumeStateError(f"{self.path}: the training checkpoint cannot be read ({type(error).__name__}); "
                                   f"{fresh_start}") from error
        if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
            stored = state.get("format") if isinstance(state, dict) else None
            raise ResumeStateError(f"{self.path}: a training checkpoint of format {stored!r}, but this version reads "
                                   f"format {FORMAT_VERSION}; {fresh_start}")
        if state["params_hash"] != self.params_hash:
            raise ResumeStateError(
                f"{self.path}: the training checkpoint was written with params hash {state['params_hash']}, but "
                f"the current params ({', '.join(RESUME_PARAMS)}, less {', '.join(RESUME_PARAMS_LEFT_OUT)}) hash to "
                f"{self.params_hash}; refusing to resume from it: {fresh_start}, or restore the params it was "
                f"written with")
        if state["device"] != device.type:
            raise ResumeStateError(f"{self.path}: the training checkpoint was written on {state['device']}, but "
                                   f"this run is on {device.type}; {fresh_start}, or run on {state['device']}")
        return state
