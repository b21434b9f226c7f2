"""`zsseg COMMAND [ARGS]`: run any stage module (`zsseg predict ...`), `zsseg preset ...` or `zsseg plan`;
`zsseg --version`, `zsseg --help`."""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import sys
from pathlib import Path

import stages

# Commands that are not stages: their module's main().
LIBRARY_COMMANDS = {"preset": "zsseg.presets", "plan": "zsseg.plan"}


def main(argv: list[str] | None = None) -> None:
    from_command_line = argv is None
    argv = sys.argv[1:] if from_command_line else argv
    commands = {module.name: f"stages.{module.name}" for module in pkgutil.iter_modules(stages.__path__)}
    commands.update(LIBRARY_COMMANDS)
    usage = (f"usage: zsseg {{{','.join(sorted(commands))}}} [ARGS]   (zsseg COMMAND --help for its arguments)\n"
             "       zsseg --version | --help")
    if argv and argv[0] in ("-h", "--help"):
        print(usage)
    elif argv and argv[0] == "--version":
        # The installed distribution's metadata: pyproject.toml's version is its only copy.
        print(f"zsseg {importlib.metadata.version('zsseg')}")
    elif argv and argv[0] in commands:
        if from_command_line:
            # argparse names a parser after sys.argv[0]: a stage's usage then reads `zsseg backbone`, not `zsseg`.
            sys.argv[0] = f"{Path(sys.argv[0]).name} {argv[0]}"
        importlib.import_module(commands[argv[0]]).main(argv[1:])
    else:
        unknown = f"\nzsseg: error: unknown command {argv[0]!r}" if argv else ""
        print(usage + unknown, file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
