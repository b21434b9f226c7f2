"""The pipeline, declared once for both engines.

``STAGES`` lists every stage with the paths it reads and writes. The rest is read from where it is
said once: a stage's params from ``PARAMS`` in its module, its code dependencies from the import
closure of that module over the project's own modules, the method stages from ``zsseg.methods``.

- DVC: ``dvc.yaml`` is generated from this (``python -m zsseg.pipeline``); a test fails when the
  committed file is not what this module writes.
- Snakemake: ``workflow/Snakefile`` makes one rule per stage (two for a stage of a run: the single
  run under ``data/`` and a cell of the K grid under ``data/k<K>/``) from :func:`snakemake_rules`.
  A job writes its log and its benchmark under its run's ``logs/`` and ``benchmarks/``.

Paths use ``{data}`` (the shared data directory), ``{run}`` (the run: ``data`` or ``data/k<K>``),
and, in the recursive round, ``{round}`` and ``{previous}``.
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zsseg.config import Params, ParamsError, TableParams, parse_params
from zsseg.methods import METHODS

PROJECT = Path(__file__).resolve().parents[1]
PACKAGES = ("zsseg", "stages")
DATA = "data"
DVC_FILE = PROJECT / "dvc.yaml"

# Where a stage runs: once per data directory; once per run (the single run, and each K of the grid);
# in the single run only; once over the whole grid.
SHARED, RUN, SINGLE, GRID = "shared", "run", "single", "grid"


@dataclass(frozen=True)
class Stage:
    name: str                                   # DVC stage, Snakemake rule, and stages/<name>.py
    inputs: dict[str, str]                      # option -> path it reads
    outputs: dict[str, str]                     # option -> path it writes
    scope: str = RUN
    arguments: dict[str, str] = field(default_factory=dict)  # options that are not paths it depends on
    reads: tuple[str, ...] = ()                 # paths it reads without an option of their own
    per_round: bool = False                     # one stage per recursive round
    uncached: tuple[str, ...] = ()              # DVC: outputs not copied into its cache
    metrics: str | None = None                  # DVC: the output that holds metrics (uncached)
    report: dict[str, Any] | None = None        # Snakemake: its `output` goes into `--report`
    module_name: str = ""                       # its module, when it is not stages/<name>.py
    overrides: dict[str, Any] = field(default_factory=dict)  # params.yaml values it runs with (--set)
    threads: int | None = None                  # its threads under both engines; None: params.yaml's threads
    # Snakemake, in a cell of the K grid: grid outputs it runs after but never reruns for (ancient).
    waits_for: tuple[str, ...] = ()
    temporary: bool = False                     # Snakemake: its output is deleted once its consumers have run
    # It trains or applies a model on tensors: its jobs ask for resources.gpus unless device is cpu, and its
    # module reads `device`. A stage without it reads no `device` (tests/test_resources.py) and runs on the CPU.
    gpu: bool = False
    # The K grid with table.backbone_per_seed false: it runs once per K, in the first seed's cell, and every
    # cell of that K reads its output there.
    shared_by_seeds: bool = False

    @property
    def module(self) -> str:
        return f"stages.{self.module_name or self.name}"


# The threads of every stage that trains or applies small models (samples, ceiling_labels, the methods),
# under DVC and Snakemake alike. Their bytes depend on the thread count on some CPUs (on an AMD EPYC, a
# generator step and the classifier's training give other bytes on one thread than on two), so the count is
# part of the stage's command (--set threads=1), not of the engine that runs it. One, so that Snakemake runs
# such jobs side by side on the cores instead of one at a time on all of them.
SMALL_MODEL_THREADS = 1


def _method_stage(method: Any) -> Stage:
    return Stage(method.stage, method.inputs, {"output": f"{{run}}/{method.stage_output}"},
                 arguments=method.arguments, per_round=method.per_round and not method.chain,
                 module_name=method.module, overrides=method.overrides, threads=SMALL_MODEL_THREADS, gpu=True)


def _method_outputs() -> tuple[str, ...]:
    return tuple(f"{{run}}/{method.stage_output}" for method in METHODS)


STAGES = (
    # Generated in seconds, the same from the same `demo` params: caching it would copy its 4005 files into
    # DVC's cache at every change (2.3 s of a cold `dvc repro`) to save a rerun that costs less.
    Stage("demo", {}, {"output": "{data}/demo"}, scope=SHARED, uncached=("output",)),
    Stage("prepare", {}, {"output": "{data}/dataset"}, scope=SHARED, reads=("{dataset_root}",),
          # A view that links the dataset's images: caching it would copy them all.
          uncached=("output",)),
    Stage("embed", {"dataset": "{data}/dataset"}, {"output": "{data}/embeddings.npz"}, scope=SHARED),
    # The frozen encoder's maps, shared by every K and seed (backbone.share_encoder_maps).
    Stage("encode", {"dataset": "{data}/dataset"}, {"output": "{data}/encoder_maps.h5"}, scope=SHARED, gpu=True),
    Stage("backbone", {"dataset": "{data}/dataset", "encoder": "{data}/encoder_maps.h5"}, {"output": "{run}/backbone"},
          gpu=True, shared_by_seeds=True),
    # The grid's cells write their caches only once the free space is checked (temporary: before every grid).
    Stage("disk_check", {"dataset": "{data}/dataset"}, {"output": "{data}/disk_check.json"}, scope=GRID,
          arguments={"grid": "{data}"}, temporary=True),
    Stage("features", {"dataset": "{data}/dataset", "backbone": "{run}/backbone", "encoder": "{data}/encoder_maps.h5"},
          {"output": "{run}/features"}, waits_for=("{data}/disk_check.json",), gpu=True, shared_by_seeds=True),
    # The seen-class samples every method trains on, drawn once per run.
    Stage("samples", {"features": "{run}/features"}, {"output": "{run}/samples.h5"}, threads=SMALL_MODEL_THREADS),
    # The unseen labels of the training images, for the supervised ceiling alone: no zero-shot stage reads it.
    Stage("ceiling_labels", {"dataset": "{data}/dataset", "features": "{run}/features"},
          {"output": "{run}/ceiling_labels.h5"}, threads=SMALL_MODEL_THREADS),
    *(_method_stage(method) for method in METHODS),
    # A diagnostic for the report: how many pseudo-features truly belong to their class, from the ceiling's
    # unseen labels. Only the report and the table read it.
    Stage("mining_precision", {"features": "{run}/features", "labels": "{run}/ceiling_labels.h5"},
          {"output": "{run}/mining_precision.csv"}, arguments={"run": "{run}"},
          reads=tuple(f"{{run}}/{method.stage_output}" for method in METHODS if method.per_round),
          threads=SMALL_MODEL_THREADS),
    # Val and dev from the network: their features are not cached (docs/cache.md).
    Stage("evaluate", {"dataset": "{data}/dataset", "backbone": "{run}/backbone", "encoder": "{data}/encoder_maps.h5"},
          {"output": "{run}/metrics", "confusion": "{run}/confusion", "dev_output": "{run}/dev_metrics",
           "headline": "{run}/headline.json"},
          arguments={"run": "{run}"}, reads=_method_outputs(), metrics="headline", uncached=("output", "dev_output"),
          gpu=True),
    # Its plot data is small and uncached: git versions it, so that `dvc plots diff` works on a fresh clone.
    Stage("report", {"dataset": "{data}/dataset", "backbone": "{run}/backbone", "encoder": "{data}/encoder_maps.h5",
                     "metrics": "{run}/metrics", "mining_precision": "{run}/mining_precision.csv"},
          {"output": "{run}/report", "plots": "{run}/plots"}, scope=SINGLE, arguments={"run": "{run}"},
          reads=_method_outputs(), uncached=("plots",),
          report={"patterns": ["{name}.png"], "caption": "report/single_run.rst", "category": "Single split",
                  "labels": {"figure": "{name}"}}, gpu=True),
    Stage("table", {"dataset": "{data}/dataset", "encoder": "{data}/encoder_maps.h5"}, {"output": "{data}/table"},
          scope=GRID, arguments={"grid": "{data}"},
          reads=("{run}/metrics", "{run}/backbone", "{run}/mining_precision.csv", *_method_outputs()),
          report={"patterns": ["{name}.png", "{name}.html"], "caption": "report/table.rst", "category": "Table",
                  "labels": {"figure": "{name}"}}, gpu=True),
)

# The outputs that, with table.backbone_per_seed false, every cell of a K reads in its first seed's cell.
SHARED_BY_SEEDS = frozenset(output for entry in STAGES if entry.shared_by_seeds for output in entry.outputs.values())

# The plots DVC draws, from the report's plot data, which git versions (data/plots, uncached): the figures in
# data/report are DVC-cached, so a fresh clone without `dvc pull` could not draw them for another commit.
DVC_PLOTS = [
    {"data/plots/rounds.csv": {"x": "round", "y": ["unseen_miou", "seen_miou", "hiou"],
                               "title": "Generalised zero-shot mIoU per round", "x_label": "round", "y_label": "%"}},
    {"data/plots/methods.csv": {"template": "bar_horizontal", "x": "hiou", "y": "method",
                                "title": f"hIoU per method ({', '.join(method.name for method in METHODS)})",
                                "x_label": "hIoU (%)"}},
    {"data/plots/backbone_loss.csv": {"x": "epoch", "y": "loss", "title": "Backbone: training loss per epoch",
                                      "x_label": "epoch", "y_label": "cross-entropy"}},
    {"data/plots/generator": {"x": "step", "y": ["seen_mmd", "pseudo_mmd"],
                              "title": "Generator: seen and pseudo MMD per logged step (a plot per result)",
                              "x_label": "step", "y_label": "MMD"}},
    {"data/plots/classifier": {"x": "epoch", "y": "loss", "title": "Classifier: training loss per epoch (a plot per "
                               "result)", "x_label": "epoch", "y_label": "cross-entropy"}},
]


def stage(name: str) -> Stage:
    return next(entry for entry in STAGES if entry.name == name)


# --- what each stage module says of itself -----------------------------------------------------------

def module_path(module: str) -> Path:
    path = PROJECT / Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


# Every closure and every rule reads the same modules again: parse each one once per process.
@functools.cache
def _project_imports(module: str) -> frozenset[str]:
    """The project modules that ``module`` imports anywhere in its source (packages included)."""
    found = set()
    for node in ast.walk(ast.parse(module_path(module).read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] in PACKAGES}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] in PACKAGES:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names
                      if module_path(f"{node.module}.{alias.name}").is_file()}
    return frozenset(found)


def code_dependencies(module: str) -> list[str]:
    """The module's file and every project module it imports, directly or through other project modules.

    Packages' ``__init__.py`` files hold only a docstring and are left out.
    """
    seen, pending = set(), [module]
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(_project_imports(name))
    paths = {module_path(name) for name in seen}
    return sorted(str(path.relative_to(PROJECT)) for path in paths if path.name != "__init__.py")


def _module_constant(module: str, name: str) -> Any:
    for node in ast.parse(module_path(module).read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError(f"{module_path(module)}: no {name} = ... at module level")


def declared_params(module: str) -> tuple[str, ...]:
    """``PARAMS`` of a stage module, read from its source: the params.yaml keys it may read."""
    return tuple(_module_constant(module, "PARAMS"))


def command_overrides(entry: Stage) -> dict[str, Any]:
    """The params.yaml values a stage's command fixes with ``--set``, the same under both engines: its
    method's values, and its thread count where its module reads ``threads``."""
    fixed_threads = {"threads": entry.threads} if entry.threads and "threads" in declared_params(entry.module) else {}
    return {**entry.overrides, **fixed_threads}


def tracked_params(entry: Stage) -> list[str]:
    """The params.yaml keys the engines rerun a stage for: those its module declares, less the values its
    command fixes (a change of them in params.yaml cannot change what it writes)."""
    return [key for key in declared_params(entry.module) if key not in command_overrides(entry)]


def summary(module: str) -> str:
    """The first paragraph of a stage module's docstring, on one line."""
    docstring = ast.get_docstring(ast.parse(module_path(module).read_text())) or module
    return " ".join(docstring.split("\n\n")[0].split())


def _arguments(entry: Stage, path: Callable[[str, str], str]) -> list[str]:
    """The command-line options of a stage; ``path(option, value)`` resolves each value."""
    options = {**entry.arguments, **entry.inputs, **entry.outputs}
    words = [word for option, value in options.items() for word in (f"--{option.replace('_', '-')}", path(option, value))]
    return words + [word for key, value in command_overrides(entry).items()
                    for word in ("--set", f"{key}={json.dumps(value)}")]


def stage_commands(config: Mapping[str, Any], data: str | Path, names: tuple[str, ...] | None = None,
                   ) -> list[tuple[str, list[str]]]:
    """(module, arguments) of each stage (of a single run, or those in ``names``) with every path under
    ``data``, in pipeline order, one per recursive round: what the engines run, to run stages in one process."""
    rounds = _rounds(config)
    commands = []
    for entry in STAGES:
        if (entry.scope == GRID and names is None) or (names is not None and entry.name not in names):
            continue
        for r in (sorted(rounds) if entry.per_round else [None]):
            def path(option: str, value: str, r: int | None = r) -> str:
                return value.format(data=data, run=data, round=r, previous=rounds.get(r), dataset_root="")

            commands.append((entry.module, _arguments(entry, path)))
    return commands


# --- DVC ---------------------------------------------------------------------------------------------

def _dvc_path(path: str) -> str:
    return path.format(data=DATA, run=DATA, round="${key}", previous="${item}", dataset_root="${dataset.root}")


def _command(entry: Stage, path: Callable[[str, str], str]) -> str:
    return " ".join(["python -m", entry.module, *_arguments(entry, path)])


def _without_nested(paths: list[str]) -> list[str]:
    """Paths in order, without duplicates or paths inside another listed path (DVC tracks a directory whole)."""
    kept: list[str] = []
    for path in dict.fromkeys(paths):
        if not any(path.startswith(other + "/") for other in paths if other != path):
            kept.append(path)
    return kept


def _dvc_reads(entry: Stage) -> list[str]:
    """A per-round output such as ``rounds/${key}`` is read through its directory (``rounds``)."""
    paths = [_dvc_path(path) for path in (*entry.inputs.values(), *entry.reads)]
    return _without_nested([path.rsplit("/", 1)[0] if "${key}" in path else path for path in paths])


def dvc_stages() -> dict[str, dict]:
    stages = {}
    for entry in STAGES:
        if entry.scope == GRID:
            continue
        uncached = {*entry.uncached, *([entry.metrics] if entry.metrics else [])}
        body = {
            "cmd": _command(entry, lambda option, value: _dvc_path(value)),
            "deps": [*code_dependencies(entry.module), *_dvc_reads(entry)],
            "params": tracked_params(entry),
            "outs": [{_dvc_path(path): {"cache": False}} if option in uncached else _dvc_path(path)
                     for option, path in entry.outputs.items()],
        }
        stages[entry.name] = {"foreach": "${recursion.rounds}", "do": body} if entry.per_round else body
    return stages


def dvc_yaml() -> str:
    """The text of dvc.yaml: a comment per stage from its module's docstring, then its declaration."""
    header = ["# Generated by `python -m zsseg.pipeline` from zsseg/pipeline.py (the stages and their paths),",
              "# each stage module's PARAMS and imports, and zsseg/methods.py. Edit those, not this file:",
              "# tests/test_engines.py fails when it is out of date. workflow/Snakefile builds the same graph.",
              "stages:"]
    lines = header
    for name, body in dvc_stages().items():
        lines.append(f"  # {summary(stage(name).module)}")
        text = yaml.safe_dump({name: body}, sort_keys=False, width=1000, default_flow_style=False)
        lines += ["  " + line for line in text.rstrip("\n").splitlines()]
        lines.append("")
    metrics_outputs = [_dvc_path(entry.outputs[entry.metrics]) for entry in STAGES if entry.metrics]
    lines.append(yaml.safe_dump({"metrics": metrics_outputs}, sort_keys=False).rstrip("\n"))
    lines.append("")
    lines.append(yaml.safe_dump({"plots": DVC_PLOTS}, sort_keys=False, width=120).rstrip("\n"))
    return "\n".join(lines) + "\n"


# --- Snakemake ---------------------------------------------------------------------------------------

@dataclass
class Rule:
    """One Snakemake rule, ready for the Snakefile's `rule:` block."""

    name: str
    input: dict[str, Any]
    output: dict[str, str]
    log: str
    benchmark: str          # the job's wall time, memory and I/O (Snakemake's TSV), beside its log
    command_template: str   # {wildcards.NAME}, {input.NAME} and {log} to fill in
    params: str
    report: dict[str, Any] | None
    wildcard_constraints: dict[str, str] = field(default_factory=dict)
    # What a report caption shows beside the figures: every method of zsseg/methods.py, in order, with the
    # short label that a figure titles it by where its name does not fit.
    caption_params: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, int] = field(default_factory=dict)
    threads: int = 1
    waits_for: list[str] = field(default_factory=list)   # inputs it never reruns for (the Snakefile's ancient())
    temporary: bool = False                               # its outputs are temp()

    def command(self, wildcards: Any, input: Any) -> str:
        """The job's shell command: a params function, so that each rule made in the Snakefile's loop
        keeps its own command (a `shell:` directive reads the loop variable when the job runs)."""
        log = self.log.format(**dict(wildcards.items()))
        return self.command_template.format(wildcards=wildcards, input=input, log=log)


def param_values(config: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    """The values of the declared params, serialised, so that Snakemake reruns a rule when they change."""
    values = {}
    for key in keys:
        node = config
        for part in key.split("."):
            node = node[part]
        values[key] = node
    return json.dumps(values, sort_keys=True)


def _rounds(config: Mapping[str, Any]) -> dict[int, int]:
    return {int(r): int(previous) for r, previous in config["recursion"]["rounds"].items()}


def _previous_round(path: str, rounds: dict[int, int]) -> Callable[[Any], str]:
    """An input function: the round that round {round} starts from (Snakemake cannot compute r - 1)."""
    def resolve(wildcards: Any) -> str:
        return path.replace("{previous}", str(rounds[int(wildcards.round)])).format(**dict(wildcards.items()))

    return resolve


def is_directory(path: str) -> bool:
    """Every output without a file suffix is a directory (Snakemake's ``directory()``)."""
    return not Path(path).suffix


def job_resources(params: Params, entry: Stage) -> dict[str, int]:
    """What a stage's jobs ask the executor for, from params.yaml's ``resources`` (the stage's own values
    over the defaults): ``mem_mb``, ``runtime`` (minutes) and, for a stage that declares ``gpu`` when
    ``device`` is not cpu, ``gpu``. A profile's ``set-resources`` overrides them per rule."""
    resources = params.resources
    unknown = sorted(set(resources.stages) - {other.name for other in STAGES})
    if unknown:
        raise ParamsError(f"params.yaml: resources.stages.{unknown[0]}: no such stage; "
                          f"expected one of {', '.join(other.name for other in STAGES)}")
    own = resources.stages.get(entry.name)
    chosen = {name: getattr(own, name) if own and getattr(own, name) is not None else getattr(resources, name)
              for name in ("mem_mb", "runtime", "gpus")}
    gpus = chosen.pop("gpus")
    if gpus and params.device != "cpu" and entry.gpu:
        chosen["gpu"] = gpus
    return chosen


def grid_cell(grid: str | Path, k: int, seed: int) -> Path:
    """A cell of the grid: one K and one seed, with its own backbone, cache, methods and metrics."""
    return Path(grid) / f"k{k}" / f"s{seed}"


GRID_CELL = str(grid_cell(DATA, "{k}", "{seed}"))


def grid_cells(config: Mapping[str, Any]) -> list[tuple[int, int]]:
    """(K, seed) of every cell of the grid."""
    return [(k, seed) for k in config["table"]["k_values"] for seed in config["table"]["seeds"]]


def reading_cell(table: TableParams, path: str, k: int | str, seed: int | str, grid: str | Path = DATA) -> Path:
    """The cell whose ``path`` (under ``{run}``) the cell (k, seed) reads: its own or, with
    ``table.backbone_per_seed: false``, the first seed's for the output of a stage shared by the seeds."""
    if path in SHARED_BY_SEEDS and not table.backbone_per_seed:
        seed = table.seeds[0]
    return grid_cell(grid, k, seed)


def snakemake_rules(config: Mapping[str, Any]) -> list[Rule]:
    """Every stage as Snakemake rules. A stage of a run has two: ``NAME`` on the single run under
    ``data/`` and ``NAME_k`` on a cell of the K x seed grid under ``data/k{k}/s{seed}/`` (run with
    ``--set dataset.unseen=K --set seed=S``)."""
    params = parse_params(config)
    rounds = _rounds(config)
    all_rounds = [0, *sorted(rounds)]
    rules = []
    for entry in STAGES:
        layouts = {SHARED: [("", DATA)], RUN: [("", DATA), ("_k", GRID_CELL)], SINGLE: [("", DATA)],
                   GRID: [("", DATA)]}[entry.scope]
        for suffix, run in layouts:
            def path(value: str, run: str = run) -> str:
                return value.format(data=DATA, run=run, round="{round}", previous="{previous}",
                                    dataset_root=config["dataset"]["root"])

            in_grid_cell = suffix == "_k"

            def read_path(value: str, run: str = run, in_grid_cell: bool = in_grid_cell) -> str:
                return path(value, str(reading_cell(params.table, value, "{k}", "{seed}")) if in_grid_cell else run)

            inputs: dict[str, Any] = {option: read_path(value) for option, value in entry.inputs.items()}
            reads = ([path(value, str(reading_cell(params.table, value, k, seed))) for value in entry.reads
                      for k, seed in grid_cells(config)]
                     if entry.scope == GRID else [read_path(value) for value in entry.reads])
            reads = [read.replace("{round}", str(r)) for read in reads
                     for r in (all_rounds if "{round}" in read else [None])]
            if entry.per_round:
                inputs = {option: _previous_round(value, rounds) if "{previous}" in value else value
                          for option, value in inputs.items()}
            inputs["reads"] = list(dict.fromkeys(reads))
            inputs["code"] = code_dependencies(entry.module)
            wildcards = {"k": "[0-9]+", "seed": "[0-9]+"} if in_grid_cell else {}
            if entry.per_round:
                wildcards["round"] = "[1-9][0-9]*"
            # Wildcards are filled in by the job; an input that depends on them is taken from the job's inputs.
            command = _command(entry, lambda option, value: f"{{input.{option}}}" if "{previous}" in value else
                               (path if option in entry.outputs else read_path)(value)
                               .replace("{round}", "{wildcards.round}").replace("{k}", "{wildcards.k}")
                               .replace("{seed}", "{wildcards.seed}"))
            if in_grid_cell:
                command += " --set dataset.unseen={wildcards.k} --set seed={wildcards.seed}"
            resources = job_resources(params, entry)
            if entry.gpu and "gpu" not in resources and params.device != "cpu":
                # A job that asked for no GPU must neither take one it finds on its node (auto) nor fail for the
                # want of one (cuda).
                command += " --set device=cpu"
            job_name = entry.name + ("_{round}" if entry.per_round else "")
            rules.append(Rule(
                name=entry.name + suffix,
                input=inputs,
                output={option: path(value) for option, value in entry.outputs.items()},
                log=f"{run}/logs/{job_name}.log",
                benchmark=f"{run}/benchmarks/{job_name}.tsv",
                # Progress bars stay on the terminal and go to the log; Snakemake's bash strict mode
                # (pipefail) keeps the stage's exit status.
                command_template=command + " 2>&1 | tee {log}",
                params=param_values(config, tracked_params(entry)),
                report=entry.report,
                wildcard_constraints=wildcards,
                caption_params={"methods": [method.name + (f' (titled "{method.label}" in figures)'
                                                           if method.label != method.name else "")
                                            + f": {method.summary}" for method in METHODS]}
                if entry.report else {},
                resources=resources,
                threads=entry.threads or params.threads,
                waits_for=[path(value) for value in entry.waits_for] if in_grid_cell else [],
                temporary=entry.temporary,
            ))
    return rules


def snakemake_targets(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """The default target (the single run's report) and the K grid's table."""
    return {"all": [f"{DATA}/report"], "table": [f"{DATA}/table"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write dvc.yaml from the pipeline's declaration.")
    parser.add_argument("--check", action="store_true", help="exit 1 if dvc.yaml is out of date, writing nothing")
    args = parser.parse_args(argv)
    text = dvc_yaml()
    if args.check:
        raise SystemExit(0 if DVC_FILE.read_text() == text else 1)
    DVC_FILE.write_text(text)
    print(f"wrote {DVC_FILE.relative_to(PROJECT)}")


if __name__ == "__main__":
    main()
