"""Atomic outputs: a stage writes to a temporary sibling path and renames it into place.

A killed run therefore leaves at most a hidden ``.*.partial-*`` path, never a file or directory
under the declared output name that a rerun (or DVC / Snakemake) could mistake for a result; the
rerun of that output removes it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _discard(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` if the block succeeds.

    With ``directory=True`` the temporary path is an empty directory, and a whole output directory
    appears at once. On any exception the temporary path is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.partial-"
    # What a killed run of this same output left behind: one job writes a given output at a time.
    for stale in target.parent.glob(f"{glob.escape(prefix)}*"):
        _discard(stale)
    if directory:
        temporary = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    else:
        handle, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
        os.close(handle)
        temporary = Path(name)
    try:
        yield temporary
        if directory and target.exists():
            _discard(target)
        os.replace(temporary, target)
    except BaseException:
        _discard(temporary)
        raise
