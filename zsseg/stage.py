"""The opening every stage shares: command line, logging, declared params, torch set-up, error handling.

A stage module declares ``PARAMS`` (the params.yaml keys it reads) and ``ARGUMENTS`` (its command-line
options), and runs its body inside :func:`stage_run`::

    with stage_run("round_0", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        ...  # stage.args, stage.params, stage.log, stage.device

Bad input (any :class:`~zsseg.errors.InputError`, a missing file, NaN) ends the stage with one line,
``STAGE: error: MESSAGE``, and exit status 2. Outputs are written with :func:`zsseg.atomic.atomic_path`,
so nothing is left under an output's name. A stage run from the command line ends its process as soon as
its body is done (:func:`~zsseg.runtime.exit_without_teardown`); called as ``main(argv)`` it returns.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zsseg.config import StageParams, load_params, parse_assignment
from zsseg.errors import InputError
from zsseg.runtime import configure_torch, exit_without_teardown, resolve_device

if TYPE_CHECKING:
    import torch

# An argument is its help text, or (type, help text) for a value that is not a path.
Argument = str | tuple[Callable[[str], Any], str]


@dataclass
class StageRun:
    """What a stage body works with. ``device`` is resolved when the stage declares it, before any work,
    so that ``device: cuda`` without a GPU fails first."""

    name: str
    args: argparse.Namespace
    params: StageParams
    log: logging.Logger
    device: torch.device | None = None


def stage_parser(description: str | None, arguments: Mapping[str, Argument]) -> argparse.ArgumentParser:
    """``--params``, ``--set`` (values replacing params.yaml's: a grid cell, a method's variant) and one
    required option per declared argument."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="the parameter file (default: params.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="replace a value of the parameter file, e.g. --set dataset.unseen=4 (repeatable)")
    for name, argument in arguments.items():
        kind, text = argument if isinstance(argument, tuple) else (str, argument)
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, required=True, help=text)
    return parser


def stage_logger(stage: str) -> logging.Logger:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    return logging.getLogger(stage)


@contextlib.contextmanager
def stage_run(name: str | Callable[[argparse.Namespace], str], description: str | None, params: Sequence[str],
              arguments: Mapping[str, Argument], argv: Sequence[str] | None = None, *, uses_torch: bool = True,
              parser: argparse.ArgumentParser | None = None) -> Iterator[StageRun]:
    """Parse the command line, load the declared params and, with ``uses_torch``, fix torch's threads and
    seed; then run the body, turning bad input into a one-line error and exit status 2.

    ``name`` may depend on the arguments (``round_3``); ``parser`` replaces the standard one.
    """
    args = (parser or stage_parser(description, arguments)).parse_args(argv)
    stage = name(args) if callable(name) else name
    try:
        overrides = dict(map(parse_assignment, getattr(args, "overrides", [])))
        declared = StageParams(load_params(args.params, overrides), params, stage)
        run = StageRun(stage, args, declared, stage_logger(stage),
                       resolve_device(declared.device) if "device" in params else None)
        if uses_torch:
            configure_torch(run.params.threads, run.params.seed)
        yield run
    except (InputError, FileNotFoundError, FloatingPointError) as error:
        print(f"{stage}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
    if argv is None:
        exit_without_teardown()
