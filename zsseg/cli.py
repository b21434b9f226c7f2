"""`zsseg COMMAND [ARGS]`: run any stage module (`zsseg predict ...`), `zsseg preset ...` or `zsseg plan`."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import stages

# Commands that are not stages: their module's main().
LIBRARY_COMMANDS = {"preset": "zsseg.presets", "plan": "zsseg.plan"}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    commands = {module.name: f"stages.{module.name}" for module in pkgutil.iter_modules(stages.__path__)}
    commands.update(LIBRARY_COMMANDS)
    if not argv or argv[0] not in commands:
        print(f"usage: zsseg {{{','.join(sorted(commands))}}} [ARGS]   (zsseg COMMAND --help for its arguments)",
              file=sys.stderr)
        raise SystemExit(0 if argv and argv[0] in ("-h", "--help") else 2)
    importlib.import_module(commands[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    main()
