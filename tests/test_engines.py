"""DVC and Snakemake declare the same stages, the same outputs and the same dependency edges."""

import re
import subprocess
import sys
from pathlib import Path

import networkx
from dvc.repo import Repo

from conftest import PROJECT_ROOT

BIN = Path(sys.executable).parent


def dvc_graph():
    repo = Repo(str(PROJECT_ROOT))
    stages = {stage.addressing: sorted(out.def_path for out in stage.outs) for stage in repo.index.stages}
    edges = set()
    for consumer, producer in repo.index.graph.edges:  # DVC points from a stage to what it depends on
        edges.add((producer.addressing, consumer.addressing))
    return stages, edges


def snakemake_graph():
    run = lambda *args: subprocess.run([str(BIN / "snakemake"), *args, "--forceall"], cwd=PROJECT_ROOT,  # noqa: E731
                                       capture_output=True, text=True, check=True).stdout
    names = {}
    edges = set()
    for node, label in re.findall(r'^\s*(\d+)\[label = "([^"]+)"', run("--dag"), flags=re.M):
        rule, *wildcards = label.split("\\n")
        names[node] = rule + "".join(f"@{value.split(': ')[1]}" for value in wildcards)
    for producer, consumer in re.findall(r"^\s*(\d+) -> (\d+)", run("--dag"), flags=re.M):
        edges.add((names[producer], names[consumer]))
    stages = {}
    for line in run("--detailed-summary").splitlines()[1:]:
        output, _, rule, *_ = line.split("\t")
        name = rule
        if rule == "round":
            name = f"round@{Path(output).name}"
        stages.setdefault(name, []).append(output)
    stages = {name: sorted(outputs) for name, outputs in stages.items()}
    edges = {(a, b) for a, b in edges if "all" not in (a, b)}
    return stages, edges


def test_both_engines_declare_the_same_stages_outputs_and_edges():
    dvc_stages, dvc_edges = dvc_graph()
    snakemake_stages, snakemake_edges = snakemake_graph()
    assert set(dvc_stages) == {"demo", "prepare", "embed", "backbone", "features", "round_0", "round@1", "round@2", "round@3",
                               "self_training", "evaluate", "report"}
    assert snakemake_stages == dvc_stages
    # DVC links a dependency on data/rounds to every round; Snakemake lists them: the edges agree.
    assert snakemake_edges == dvc_edges
    assert networkx.is_directed_acyclic_graph(networkx.DiGraph(list(dvc_edges)))
