"""Both engines declare the pipeline of zsseg/pipeline.py: the same stages, outputs and edges, each stage's
code dependencies equal to the import closure of its module, its params as its module declares them,
and commands its module accepts."""

import json
import re
import subprocess
import sys
from pathlib import Path

import networkx
import pytest
import yaml
from dvc.repo import Repo

from conftest import PROJECT_ROOT
from zsseg import pipeline
from zsseg.stage import stage_parser

BIN = Path(sys.executable).parent
DVC = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())
CONFIG = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())


def dvc_graph():
    repo = Repo(str(PROJECT_ROOT))
    stages = {stage.addressing: sorted(out.def_path for out in stage.outs) for stage in repo.index.stages}
    edges = set()
    for consumer, producer in repo.index.graph.edges:  # DVC points from a stage to what it depends on
        edges.add((producer.addressing, consumer.addressing))
    return stages, edges


def snakemake(*args):
    return subprocess.run([str(BIN / "snakemake"), *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          check=True).stdout


def snakemake_graph():
    names = {}
    edges = set()
    dag = snakemake("--dag", "--forceall")
    for node, label in re.findall(r'^\s*(\d+)\[label = "([^"]+)"', dag, flags=re.M):
        rule, *wildcards = label.split("\\n")
        names[node] = rule + "".join(f"@{value.split(': ')[1]}" for value in wildcards)
    for producer, consumer in re.findall(r"^\s*(\d+) -> (\d+)", dag, flags=re.M):
        edges.add((names[producer], names[consumer]))
    stages = {}
    for line in snakemake("--detailed-summary", "--forceall").splitlines()[1:]:
        output, _, rule, *_ = line.split("\t")
        name = f"{rule}@{Path(output).name}" if rule == "recursive_round" else rule
        stages.setdefault(name, []).append(output)
    stages = {name: sorted(outputs) for name, outputs in stages.items()}
    edges = {(a, b) for a, b in edges if "all" not in (a, b)}
    return stages, edges


def snakemake_jobs(*targets):
    """Every job of a forced dry run: (rule, wildcards) -> its declared inputs."""
    jobs = {}
    for block in snakemake("-n", "--forceall", *targets).split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        inputs = re.search(r"^\s+input: (.*)$", block, flags=re.M)
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, flags=re.M)
        jobs[(rule, wildcards.group(1) if wildcards else "")] = inputs.group(1).split(", ") if inputs else []
    return jobs


def test_dvc_yaml_is_what_the_declaration_writes():
    assert (PROJECT_ROOT / "dvc.yaml").read_text() == pipeline.dvc_yaml(), \
        "dvc.yaml is out of date: run `python -m zsseg.pipeline`"


def test_both_engines_declare_the_same_stages_outputs_and_edges():
    dvc_stages, dvc_edges = dvc_graph()
    snakemake_stages, snakemake_edges = snakemake_graph()
    rounds = sorted(int(r) for r in CONFIG["recursion"]["rounds"])
    assert set(dvc_stages) == {name for entry in pipeline.STAGES if entry.scope != pipeline.GRID
                               for name in ([f"{entry.name}@{r}" for r in rounds] if entry.per_round else [entry.name])}
    assert {"demo", "prepare", "embed", "backbone", "features", "round_0", "recursive_round@3", "self_training",
            "evaluate", "report"} <= set(dvc_stages)
    assert snakemake_stages == dvc_stages
    # DVC links a dependency on data/rounds to every round; Snakemake lists them: the edges agree.
    assert snakemake_edges == dvc_edges
    assert networkx.is_directed_acyclic_graph(networkx.DiGraph(list(dvc_edges)))


# Imports every stage module with the import statement traced, and prints which project module
# imported which: the import closure as Python executes it, independent of zsseg.pipeline's reading
# of the source.
TRACE = """
import builtins, importlib, json, sys
edges = {}
original = builtins.__import__

def traced(name, globals=None, locals=None, fromlist=(), level=0):
    module = original(name, globals, locals, fromlist, level)
    importer = (globals or {}).get("__name__", "")
    if importer.split(".")[0] in ("zsseg", "stages") and name.split(".")[0] in ("zsseg", "stages"):
        found = edges.setdefault(importer, set())
        found.add(name)
        found.update(f"{name}.{item}" for item in fromlist or () if f"{name}.{item}" in sys.modules)
    return module

builtins.__import__ = traced
for module in sys.argv[1:]:
    importlib.import_module(module)
print(json.dumps({key: sorted(value) for key, value in edges.items()}))
"""


@pytest.fixture(scope="module")
def executed_imports():
    modules = [entry.module for entry in pipeline.STAGES]
    result = subprocess.run([sys.executable, "-c", TRACE, *modules], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])


def executed_closure(edges, module):
    seen, pending = set(), [module]
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(edges.get(name, []))
    files = {pipeline.module_path(name) for name in seen}
    return sorted(str(path.relative_to(PROJECT_ROOT)) for path in files if path.name != "__init__.py")


def test_code_dependencies_are_the_import_closure_in_both_engines(executed_imports):
    jobs = {**snakemake_jobs(), **snakemake_jobs("table")}
    for entry in pipeline.STAGES:
        expected = executed_closure(executed_imports, entry.module)
        assert f"{entry.module.replace('.', '/')}.py" in expected and "zsseg/config.py" in expected
        assert pipeline.code_dependencies(entry.module) == expected, entry.name
        if entry.scope != pipeline.GRID:
            body = DVC["stages"][entry.name]
            body = body.get("do", body)
            assert [dep for dep in body["deps"] if dep.endswith(".py")] == expected, entry.name
        rules = [rule for rule in jobs if rule[0] in (entry.name, f"{entry.name}_k")]
        assert rules, entry.name
        for rule in rules:
            assert [path for path in jobs[rule] if path.endswith(".py")] == expected, rule


def test_dvc_tracks_exactly_the_params_each_module_declares_less_what_its_command_fixes():
    fixed_somewhere = set()
    for entry in pipeline.STAGES:
        if entry.scope == pipeline.GRID:
            continue
        body = DVC["stages"][entry.name]
        body = body.get("do", body)
        fixed = set(re.findall(r"--set ([\w.]+)=", body["cmd"]))
        fixed_somewhere |= fixed
        assert body["params"] == [key for key in pipeline.declared_params(entry.module) if key not in fixed], entry.name
    # Both kinds of fixed values occur: a method's (an ablation's lambda) and a stage's thread count.
    assert {"recursion.zs_mmd_lambda", "threads"} <= fixed_somewhere


def test_every_declared_command_is_accepted_by_its_stage():
    """The options of zsseg/pipeline.py's stages are the ARGUMENTS their modules declare."""
    import importlib

    names = tuple(entry.name for entry in pipeline.STAGES)
    commands = pipeline.stage_commands(CONFIG, "data", names)
    assert {module for module, _ in commands} == {entry.module for entry in pipeline.STAGES}
    for module, arguments in commands:
        # Every option is required, so parsing fails on a missing, extra or misspelt one.
        stage_parser(None, importlib.import_module(module).ARGUMENTS).parse_args(arguments)
