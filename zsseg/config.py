"""``params.yaml``: the single source of truth for DVC and Snakemake, loaded into typed sections.

Every stage calls :func:`load_params`, which rejects unknown keys, wrong types and out-of-range
values with a message that names the key, the value and what is allowed, before any work starts.
A key whose value names an entry of a registry (a dataset, an embedding source, a backbone) is
checked against that registry by :func:`choose`, where the stage looks the entry up.

A stage sees params.yaml through :class:`StageParams`: only the keys its module declares in
``PARAMS``, the same list that both engines track, so a stage cannot read a key that DVC or
Snakemake would not rerun it for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

import yaml

from zsseg.errors import InputError


T = TypeVar("T")


class ParamsError(InputError):
    """A value in params.yaml is missing, unknown, of the wrong type or out of range."""


@dataclass(frozen=True)
class DatasetParams:
    name: str
    root: str
    unseen: int | list[str]
    dev_fraction: float
    dev_seed: int
    # include: background (class 0) is a seen class like the others (ZS3Net). ignore: its pixels are ignored
    # (255) by every training stage and by evaluation, and it is never predicted (SPNet, CaGNet).
    background: Literal["include", "ignore"] = "include"


# Keys added after artifacts were hashed with ``section_hash``: at this value, a key is hashed as if absent, so
# that every artifact made before it (a feature cache, a backbone's resume state, a run's samples) keeps its
# hash, and a run that leaves the key at it stays byte-identical. Any other value is hashed.
HASHED_UNLESS = {"dataset.background": "include"}


@dataclass(frozen=True)
class DemoParams:
    train_images: int
    val_images: int
    image_size: int
    min_objects: int
    max_objects: int
    seed: int
    dev_images: int


@dataclass(frozen=True)
class EmbedParams:
    source: str
    path: str | None = None


@dataclass(frozen=True)
class BackboneParams:
    arch: str
    weights: str
    checkpoint: str | None
    freeze_encoder: bool
    feature_dim: int
    aspp_rates: list[int]
    crop_size: int | None
    scale_range: list[float]
    loss_label_stride: int
    epochs: int
    batch_size: int
    optimizer: str
    learning_rate: float
    head_lr_multiplier: float
    momentum: float
    weight_decay: float
    workers: int
    mixed_precision: bool
    share_encoder_maps: bool
    checkpoint_minutes: float


@dataclass(frozen=True)
class FeaturesParams:
    batch_size: int
    label_purity: float
    precision: Literal["uint8", "float16"]
    labelled_share: float
    pool_share: float


@dataclass(frozen=True)
class GeneratorParams:
    noise_dim: int
    hidden_dim: int
    dropout: float
    bandwidths: list[float]
    steps: int
    learning_rate: float
    samples_per_class: int
    real_features_per_class: int
    noise: Literal["normal", "uniform"]
    init: Literal["pytorch", "xavier"]


@dataclass(frozen=True)
class ClassifierParams:
    epochs: int
    batch_size: int
    learning_rate: float
    generated_per_class: int
    sampling: Literal["balanced", "natural"]
    unseen_weight: float


@dataclass(frozen=True)
class RecursionParams:
    rounds: dict[int, int]
    threshold: float
    thresholds: Literal["global", "per_class", "at_most_global"]
    class_top_percent: float
    class_threshold_floor: float
    guard: Literal["none", "agreement"]
    per_class_cap: int
    min_count: int
    zs_mmd_lambda: float
    generator_steps: int
    mining_pool: Literal["unlabelled_images", "all_images"]
    weighting: Literal["confidence", "rescaled", "uniform"]
    selection: Literal["most_confident", "random_above_threshold"]
    per_image_cap: int | None
    allow_empty_rounds: bool
    pseudo_labels_in_classifier: bool

    def all_rounds(self) -> list[int]:
        """Round 0 (plain ZS3Net) followed by the recursive rounds in order."""
        return [0, *sorted(self.rounds)]


@dataclass(frozen=True)
class SelfTrainingParams:
    top_percent: float
    per_class_cap: int
    selection: Literal["top_by_image", "top_over_split"]


@dataclass(frozen=True)
class TableParams:
    k_values: list[int]
    seeds: list[int]
    check_free_space: bool
    backbone_per_seed: bool


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int
    absent_classes: Literal["skip", "zero"]
    # Test-time augmentation (zsseg/dense_prediction.py): the evaluate stage and `zsseg predict` average the
    # softmax over these image scales, and over the flipped image too with ``flip``. [1.0] and false: none.
    scales: list[float] = field(default_factory=lambda: [1.0])
    flip: bool = False


@dataclass(frozen=True)
class ReportParams:
    grid_images: int


@dataclass(frozen=True)
class JobResources:
    """One stage's own values, over the section's defaults."""

    mem_mb: int | None = None
    runtime: int | None = None
    gpus: int | None = None


@dataclass(frozen=True)
class ResourcesParams:
    """What each Snakemake job asks its executor for (on Slurm: --mem, --time, --gpus)."""

    mem_mb: int
    runtime: int                                # minutes
    gpus: int                                   # for a stage that runs the network, unless device is cpu
    stages: dict[str, JobResources] = field(default_factory=dict)


@dataclass(frozen=True)
class Params:
    seed: int
    device: str
    threads: int
    dataset: DatasetParams
    demo: DemoParams
    embed: EmbedParams
    backbone: BackboneParams
    features: FeaturesParams
    generator: GeneratorParams
    classifier: ClassifierParams
    recursion: RecursionParams
    self_training: SelfTrainingParams
    table: TableParams
    evaluate: EvaluateParams
    report: ReportParams
    resources: ResourcesParams
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def section_hash(self, *sections: str, without: Sequence[str] = ()) -> str:
        """A short stable hash of the named top-level sections, stored in artifacts that they made; ``without``:
        dotted keys of those sections left out (a key that cannot change the artifact). A key of
        ``HASHED_UNLESS`` at its value is left out too."""
        chosen = {name: self.raw.get(name) for name in sorted(sections)}
        at_default = []
        for key, default in HASHED_UNLESS.items():
            section, name = key.split(".")
            if isinstance(chosen.get(section), dict) and chosen[section].get(name, default) == default:
                at_default.append(key)
        for key in [*without, *at_default]:
            section, name = key.split(".")
            chosen[section] = {other: value for other, value in chosen[section].items() if other != name}
        digest = hashlib.sha256(json.dumps(chosen, sort_keys=True, default=str).encode())
        return digest.hexdigest()[:16]


DEVICES = ("auto", "cpu", "cuda")


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", str(annotation)).replace("typing.", "")


def _convert(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        options = typing.get_args(annotation)
        if value not in options:
            raise ParamsError(f"params.yaml: {key} = {value!r}: expected one of {', '.join(map(str, options))}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key)
            except ParamsError:
                continue
        raise ParamsError(f"params.yaml: {key} = {value!r}: expected one of "
                          f"{' or '.join(_type_name(o) for o in options if o is not type(None))}")
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise ParamsError(f"params.yaml: {key} = {value!r}: expected a list of {_type_name(item_type)}")
        return [_convert(item, item_type, f"{key}[{index}]") for index, item in enumerate(value)]
    if origin is dict:
        key_type, value_type = typing.get_args(annotation)
        if not isinstance(value, dict):
            raise ParamsError(f"params.yaml: {key} = {value!r}: expected a mapping")
        return {_convert(k, key_type, f"{key} key"): _convert(v, value_type, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, key)
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif annotation is str:
        if isinstance(value, str):
            return value
    raise ParamsError(f"params.yaml: {key} = {value!r}: expected {_type_name(annotation)}")


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ParamsError(f"params.yaml: {prefix or 'top level'} = {data!r}: expected a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "raw"}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ParamsError(f"params.yaml: unknown key {where}{unknown[0]}; allowed keys: {', '.join(fields)}")
    values = {}
    for name, spec in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in data:
            if spec.default is not dataclasses.MISSING:
                values[name] = spec.default
                continue
            if spec.default_factory is not dataclasses.MISSING:
                values[name] = spec.default_factory()
                continue
            raise ParamsError(f"params.yaml: missing key {key} ({_type_name(hints[name])})")
        values[name] = _convert(data[name], hints[name], key)
    return cls(**values)


def _require(condition: bool, key: str, value: Any, allowed: str) -> None:
    if not condition:
        raise ParamsError(f"params.yaml: {key} = {value!r}: expected {allowed}")


def _check_ranges(params: Params) -> None:
    _require(params.threads >= 1, "threads", params.threads, "an integer >= 1")
    _require(params.device in DEVICES, "device", params.device, f"one of {', '.join(DEVICES)}")
    if isinstance(params.dataset.unseen, int):
        _require(params.dataset.unseen >= 1, "dataset.unseen", params.dataset.unseen,
                 "an integer K >= 1 or a list of class names")
    else:
        _require(len(params.dataset.unseen) >= 1, "dataset.unseen", params.dataset.unseen,
                 "a non-empty list of class names")
    demo = params.demo
    for name in ("train_images", "val_images", "min_objects"):
        _require(getattr(demo, name) >= 1, f"demo.{name}", getattr(demo, name), "an integer >= 1")
    _require(demo.image_size >= 32, "demo.image_size", demo.image_size, "an integer >= 32")
    _require(demo.max_objects >= demo.min_objects, "demo.max_objects", demo.max_objects,
             f"an integer >= demo.min_objects ({demo.min_objects})")
    backbone = params.backbone
    _require(backbone.crop_size is None or backbone.crop_size >= 32, "backbone.crop_size", backbone.crop_size,
             "null (train on whole images of one size) or an integer >= 32")
    _require(len(backbone.scale_range) == 2 and 0 < backbone.scale_range[0] <= backbone.scale_range[1],
             "backbone.scale_range", backbone.scale_range, "[low, high] with 0 < low <= high")
    _require(backbone.loss_label_stride >= 1, "backbone.loss_label_stride", backbone.loss_label_stride,
             "an integer >= 1")
    _require(backbone.head_lr_multiplier > 0, "backbone.head_lr_multiplier", backbone.head_lr_multiplier, "a number > 0")
    _require(0 <= backbone.momentum < 1, "backbone.momentum", backbone.momentum, "a number in [0, 1)")
    _require(backbone.workers >= 0, "backbone.workers", backbone.workers, "an integer >= 0")
    _require(backbone.checkpoint_minutes > 0, "backbone.checkpoint_minutes", backbone.checkpoint_minutes,
             "a number of minutes > 0")
    if backbone.share_encoder_maps:
        # Shared maps are the same for every K and seed: nothing of the encoder may depend on them or train.
        for key, expected in (("freeze_encoder", True), ("crop_size", None), ("checkpoint", None)):
            value = getattr(backbone, key)
            _require(value == expected, f"backbone.{key}", value,
                     f"{'null' if expected is None else 'true'} with backbone.share_encoder_maps: true (or set it "
                     f"false)")
        _require(backbone.weights != "none", "backbone.weights", backbone.weights,
                 "ImageNet weights with backbone.share_encoder_maps: true (a random encoder depends on the seed)")
    for section, names in (("backbone", ("feature_dim", "epochs", "batch_size")),
                           ("features", ("batch_size",)),
                           ("generator", ("noise_dim", "hidden_dim", "steps", "samples_per_class",
                                          "real_features_per_class")),
                           ("classifier", ("epochs", "batch_size", "generated_per_class")),
                           ("recursion", ("per_class_cap", "generator_steps")),
                           ("self_training", ("per_class_cap",)),
                           ("evaluate", ("batch_size",)),
                           ("report", ("grid_images",))):
        for name in names:
            value = getattr(getattr(params, section), name)
            _require(value >= 1, f"{section}.{name}", value, "an integer >= 1")
    for key, value in (("backbone.learning_rate", backbone.learning_rate),
                       ("generator.learning_rate", params.generator.learning_rate),
                       ("classifier.learning_rate", params.classifier.learning_rate)):
        _require(value > 0, key, value, "a number > 0")
    _require(backbone.weight_decay >= 0, "backbone.weight_decay", backbone.weight_decay, "a number >= 0")
    _require(all(rate >= 1 for rate in backbone.aspp_rates) and backbone.aspp_rates, "backbone.aspp_rates",
             backbone.aspp_rates, "a non-empty list of dilation rates >= 1")
    for name in ("label_purity", "labelled_share", "pool_share"):
        value = getattr(params.features, name)
        _require(0 < value <= 1, f"features.{name}", value, "a number in (0, 1]")
    _require(0 <= params.generator.dropout < 1, "generator.dropout", params.generator.dropout, "a number in [0, 1)")
    _require(bool(params.generator.bandwidths) and all(b > 0 for b in params.generator.bandwidths),
             "generator.bandwidths", params.generator.bandwidths, "a non-empty list of numbers > 0")
    recursion = params.recursion
    expected = {r: r - 1 for r in range(1, len(recursion.rounds) + 1)}
    _require(bool(recursion.rounds) and recursion.rounds == expected, "recursion.rounds", recursion.rounds,
             "a mapping {round: previous round} that chains 1..R with R >= 1, e.g. {1: 0, 2: 1, 3: 2}")
    _require(0 < recursion.threshold <= 1, "recursion.threshold", recursion.threshold, "a number in (0, 1]")
    _require(recursion.min_count >= 0, "recursion.min_count", recursion.min_count, "an integer >= 0")
    _require(0 < recursion.class_top_percent <= 100, "recursion.class_top_percent", recursion.class_top_percent,
             "a percentage in (0, 100]")
    _require(0 <= recursion.class_threshold_floor <= 1, "recursion.class_threshold_floor",
             recursion.class_threshold_floor, "a softmax confidence in [0, 1]")
    _require(bool(params.table.k_values) and all(k >= 1 for k in params.table.k_values)
             and len(set(params.table.k_values)) == len(params.table.k_values), "table.k_values",
             params.table.k_values, "a non-empty list of distinct integers K >= 1")
    _require(bool(params.table.seeds) and len(set(params.table.seeds)) == len(params.table.seeds)
             and all(seed >= 0 for seed in params.table.seeds), "table.seeds", params.table.seeds,
             "a non-empty list of distinct integers >= 0")
    _require(0 < params.self_training.top_percent <= 100, "self_training.top_percent",
             params.self_training.top_percent, "a percentage in (0, 100]")
    _require(recursion.zs_mmd_lambda >= 0, "recursion.zs_mmd_lambda", recursion.zs_mmd_lambda, "a number >= 0")
    _require(recursion.per_class_cap >= recursion.min_count, "recursion.per_class_cap", recursion.per_class_cap,
             f"an integer >= recursion.min_count ({recursion.min_count}): a class is kept when it has min_count "
             f"pseudo-features after the cap")
    _require(recursion.per_image_cap is None or recursion.per_image_cap >= 1, "recursion.per_image_cap",
             recursion.per_image_cap, "null or an integer >= 1")
    _require(recursion.weighting != "rescaled" or recursion.threshold < 1, "recursion.weighting",
             recursion.weighting, "confidence or uniform when recursion.threshold is 1 (rescaled divides by 1 - "
             "threshold)")
    _require(params.classifier.unseen_weight > 0, "classifier.unseen_weight", params.classifier.unseen_weight,
             "a number > 0")
    _require(0 <= params.dataset.dev_fraction < 1, "dataset.dev_fraction", params.dataset.dev_fraction,
             "a share in [0, 1) of the training images held out as the dev split")
    _require(params.demo.dev_images >= 0, "demo.dev_images", params.demo.dev_images, "an integer >= 0")
    scales = params.evaluate.scales
    _require(bool(scales) and all(0 < scale < float("inf") for scale in scales), "evaluate.scales", scales,
             "a non-empty list of finite image scale factors > 0, e.g. [0.75, 1.0, 1.25] ([1.0]: no multi-scale "
             "test-time augmentation)")
    for prefix, resources in (("resources", params.resources),
                              *((f"resources.stages.{name}", own) for name, own in params.resources.stages.items())):
        for name, least in (("mem_mb", 1), ("runtime", 1), ("gpus", 0)):
            value = getattr(resources, name)
            _require(value is None or value >= least, f"{prefix}.{name}", value, f"an integer >= {least}")


def choose(registry: Mapping[str, T], key: str, value: str) -> T:
    """The entry ``value`` of a registry, or a ParamsError that names the key, the value and every entry."""
    if value not in registry:
        raise ParamsError(f"params.yaml: {key} = {value!r}: expected one of {', '.join(registry)}")
    return registry[value]


class UndeclaredParamsError(RuntimeError):
    """A stage read a params.yaml key that its module does not declare: a bug in the stage, not bad input."""


class _DeclaredView:
    """One section of params.yaml, restricted to the declared keys; its methods see the same view."""

    def __init__(self, value: Any, allowed: set[str], where: str, stage: str) -> None:
        self._value, self._allowed, self._where, self._stage = value, allowed, where, stage

    def __getattr__(self, name: str) -> Any:
        fields = {f.name for f in dataclasses.fields(self._value)}
        if name not in fields:
            attribute = getattr(type(self._value), name)
            return attribute.__get__(self) if callable(attribute) else attribute
        if name not in self._allowed:
            raise UndeclaredParamsError(f"stage {self._stage} reads params.yaml key {self._where}{name}, which its "
                                        f"module does not declare in PARAMS")
        return getattr(self._value, name)


class StageParams:
    """The params a stage declares (``PARAMS`` in its module): whole sections such as ``generator`` or
    single keys such as ``evaluate.batch_size``. Reading anything else raises UndeclaredParamsError.

    ``section_hash`` stays open: it checks where an artifact came from, it is not an input.
    """

    def __init__(self, params: Params, declared: Sequence[str], stage: str) -> None:
        top_level = {f.name for f in dataclasses.fields(Params) if f.name != "raw"}
        self._params, self._stage = params, stage
        self._whole: set[str] = set()
        self._partial: dict[str, set[str]] = {}
        for key in declared:
            section, _, name = key.partition(".")
            if section not in top_level:
                raise UndeclaredParamsError(f"stage {stage} declares params.yaml key {key}, which does not exist")
            if name:
                self._partial.setdefault(section, set()).add(name)
            else:
                self._whole.add(section)

    @property
    def full(self) -> Params:
        return self._params

    def section_hash(self, *sections: str, without: Sequence[str] = ()) -> str:
        return self._params.section_hash(*sections, without=without)

    def __getattr__(self, name: str) -> Any:
        if name in self._whole:
            return getattr(self._params, name)
        if name in self._partial:
            return _DeclaredView(getattr(self._params, name), self._partial[name], f"{name}.", self._stage)
        raise UndeclaredParamsError(f"stage {self._stage} reads params.yaml key {name}, which its module does not "
                                    f"declare in PARAMS")


def parse_params(data: Any) -> Params:
    params = _build(Params, data, "")
    _check_ranges(params)
    return dataclasses.replace(params, raw=data)


def parse_assignment(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` (a dotted key, a YAML value) as (key, value)."""
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise ParamsError(f"--set {text!r}: expected KEY=VALUE, e.g. dataset.unseen=4")
    return key, yaml.safe_load(value) if value else ""


def load_params(path: str | Path = "params.yaml", overrides: Mapping[str, Any] | None = None) -> Params:
    """Load and validate params.yaml, with ``overrides`` ({dotted key: value}) replacing its values: a cell
    of the K x seed grid (``dataset.unseen``, ``seed``) or a method's variant of a stage."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: parameter file not found (run from the project root)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}") from error
    for key, value in (overrides or {}).items():
        *parents, last = key.split(".")
        node = data
        for part in parents:
            if not isinstance(node, dict) or not isinstance(node.get(part), dict):
                raise ParamsError(f"--set {key}: {part!r} is not a section of {path}")
            node = node[part]
        if last not in node:
            raise ParamsError(f"--set {key}: no key {last!r} in {path}")
        node[last] = value
    return parse_params(data)
