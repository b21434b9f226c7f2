"""Reading the model files a run holds and users pass around (a colleague's run for ``zsseg predict``, a
lab's DVC remote, downloaded weights): tensors, numbers, strings, lists and dicts only.

A ``.pt`` file is a pickle, and unpickling an arbitrary object can run any code its author chose, so every
such file is read with ``torch.load(weights_only=True)``, which refuses other objects before building them.
The project writes nothing else into its files.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from zsseg.errors import InputError


class CheckpointError(InputError):
    """A model file holds pickled objects beyond tensors and plain containers."""


def load_weights_only(path: str | Path) -> Any:
    """The content of the torch file at ``path``, on the CPU; a file that would unpickle anything but tensors,
    numbers, strings, lists and dicts is refused, naming it, before any of its objects is built."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{path}: refused: it holds pickled objects other than tensors, numbers, strings, "
                              f"lists and dicts, and building them could run code from the file. Use a file "
                              f"this project wrote, or re-save only its state dict") from error
