"""`zsseg preset NAME --set KEY=VALUE ...`: a dataset's preset and your paths, over params.yaml, validated.

A dataset preset (``zsseg/preset_files/NAME.yaml``) holds only what differs from the demo's params.yaml:
ZS3Net's recipe for VOC or Pascal-Context, with ``/path/to/...`` where your files go. The ``zs3net``
overlay, applied after one, sets ZS3Net's value of every choice docs/method.md's fidelity table names. The command
overlays the preset, then every ``--set``, on params.yaml (its comments kept), validates the result as
every stage will (every key, and every registry entry: dataset, embedding source, backbone, optimiser),
and only then writes it. A ``/path/to/`` left unfilled, or any invalid value, is refused and nothing is
written.
"""

from __future__ import annotations

import argparse
import copy
import io
import sys
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq

from zsseg.atomic import atomic_path
from zsseg.backbone_training import check_training_params
from zsseg.config import Params, ParamsError, choose, parse_assignment, parse_params
from zsseg.datasets.registry import DATASETS, check_background
from zsseg.embeddings import check_embed_params

# Inside the package, so that an installed wheel has them as well as the checkout.
PRESETS = Path(__file__).resolve().parent / "preset_files"
PLACEHOLDER = "/path/to/"


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESETS.glob("*.yaml"))


def validate(data: Any) -> Params:
    """params.yaml content checked as a whole: every key, and every value that names a registry entry."""
    params = parse_params(data)
    choose(DATASETS, "dataset.name", params.dataset.name)
    check_background(params.dataset.name, params.dataset.background)
    check_embed_params(params.embed)
    check_training_params(params.backbone)
    return params


def _overlay(base: dict, overlay: dict, prefix: str = "") -> None:
    for key, value in overlay.items():
        where = f"{prefix}{key}"
        if key not in base:
            raise ParamsError(f"params.yaml: unknown key {where}; allowed keys: {', '.join(map(str, base))}")
        if isinstance(value, dict):
            if not isinstance(base[key], dict):
                raise ParamsError(f"params.yaml: {where} is a value, not a section")
            _overlay(base[key], value, f"{where}.")
        elif isinstance(value, list):
            # Lists stay on one line, as params.yaml writes them.
            sequence = CommentedSeq(value)
            sequence.fa.set_flow_style()
            base[key] = sequence
        else:
            base[key] = value


def _assignment(text: str) -> dict:
    """``a.b=VALUE`` as {"a": {"b": VALUE}}, VALUE read as YAML (numbers, lists, null)."""
    key, node = parse_assignment(text)
    for part in reversed(key.split(".")):
        node = {part: node}
    return node


def _placeholders(data: Any, prefix: str = "") -> list[str]:
    if isinstance(data, dict):
        return [found for key, value in data.items() for found in _placeholders(value, f"{prefix}{key}.")]
    return [prefix.rstrip(".")] if isinstance(data, str) and data.startswith(PLACEHOLDER) else []


def apply_preset(name: str, assignments: list[str], params_path: Path) -> Params:
    """Overlay preset ``name`` and the ``KEY=VALUE`` assignments on ``params_path`` and rewrite it."""
    preset = PRESETS / f"{name}.yaml"
    if not preset.is_file():
        raise ParamsError(f"preset {name!r}: no {preset}; expected one of {', '.join(preset_names())}")
    round_trip = YAML()
    round_trip.width = 4096
    round_trip.preserve_quotes = True
    round_trip.representer.add_representer(type(None), lambda representer, _: representer.represent_scalar(
        "tag:yaml.org,2002:null", "null"))
    document = round_trip.load(params_path.read_text())
    for overlay in [yaml.safe_load(preset.read_text()), *map(_assignment, assignments)]:
        _overlay(document, overlay)
    plain = yaml.safe_load(_dump(round_trip, document))
    unfilled = _placeholders(plain)
    if unfilled:
        key = unfilled[0]
        raise ParamsError(f"params.yaml: {key} = {_lookup(plain, key)!r}: fill in your path with --set {key}=PATH")
    params = validate(copy.deepcopy(plain))
    with atomic_path(params_path) as temporary:
        temporary.write_text(_dump(round_trip, document))
    return params


def _lookup(data: dict, key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


def _dump(round_trip: YAML, document: Any) -> str:
    stream = io.StringIO()
    round_trip.dump(document, stream)
    return stream.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="zsseg preset", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help=f"the preset: zsseg/preset_files/NAME.yaml ({', '.join(preset_names())})")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="a value of yours, e.g. --set dataset.root=/data/pascal (repeat for each)")
    parser.add_argument("--params", default="params.yaml", help="the file to overlay and rewrite")
    args = parser.parse_args(argv)
    try:
        params = apply_preset(args.name, args.assignments, Path(args.params))
    except (ParamsError, FileNotFoundError) as error:
        print(f"preset: error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
    print(f"wrote {args.params}: {args.name} preset, dataset {params.dataset.name} at {params.dataset.root}, "
          f"K = {params.dataset.unseen}")


if __name__ == "__main__":
    main()
