"""`zsseg STAGE [ARGS]`: run any stage module, e.g. `zsseg predict --classes ... image.jpg --out out/`."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import stages


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    names = sorted(module.name for module in pkgutil.iter_modules(stages.__path__))
    if not argv or argv[0] not in names:
        print(f"usage: zsseg {{{','.join(names)}}} [ARGS]   (zsseg STAGE --help for a stage's arguments)",
              file=sys.stderr)
        raise SystemExit(0 if argv and argv[0] in ("-h", "--help") else 2)
    importlib.import_module(f"stages.{argv[0]}").main(argv[1:])


if __name__ == "__main__":
    main()
