"""Each Snakemake job's resources (memory, runtime, GPUs) come from params.yaml's `resources`."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT_ROOT
from zsseg import pipeline
from zsseg.config import ParamsError, parse_params

BIN = Path(sys.executable).parent
# The stages that run the network, by hand: each trains it or runs it over images (evaluate, the report and the
# table run it over val images, which are not cached).
NETWORK_STAGES = {"encode", "backbone", "features", "evaluate", "report", "table"}


def params(**resources):
    data = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    data["resources"].update(resources)
    return data


def resources_of(data, name):
    return pipeline.job_resources(parse_params(data), pipeline.stage(name))


def test_every_job_of_a_dry_run_asks_for_the_resources_in_params_yaml():
    data = params()
    dry_run = subprocess.run([str(BIN / "snakemake"), "-n", "--forceall", "table", "all"], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, check=True).stdout
    jobs = 0
    for block in dry_run.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        if rule == "all":   # a target, run by no job
            continue
        listed = dict(item.split("=", 1) for item in
                      re.search(r"^\s+resources: (.*)$", block, flags=re.M).group(1).split(", "))
        stage = rule.removesuffix("_k")
        own = data["resources"]["stages"].get(stage, {})
        gpu_expected = data["device"] != "cpu" and stage in NETWORK_STAGES
        assert listed["mem_mb"] == str(own.get("mem_mb", data["resources"]["mem_mb"])), rule
        assert listed["runtime"] == str(own.get("runtime", data["resources"]["runtime"])), rule
        assert listed.get("gpu") == (str(data["resources"]["gpus"]) if gpu_expected else None), rule
        jobs += 1
    assert jobs > 20


def test_a_stage_takes_its_own_values_over_the_defaults():
    data = params(mem_mb=1000, runtime=5, gpus=2, stages={"backbone": {"mem_mb": 64000, "runtime": 2880}})
    assert resources_of(data, "backbone") == {"mem_mb": 64000, "runtime": 2880, "gpu": 2}
    assert resources_of(data, "features") == {"mem_mb": 1000, "runtime": 5, "gpu": 2}
    assert resources_of(data, "round_0") == {"mem_mb": 1000, "runtime": 5}


def test_no_gpu_is_asked_for_on_the_cpu_or_for_a_stage_without_the_network():
    data = params()
    data["device"] = "cpu"
    assert all("gpu" not in resources_of(data, entry.name) for entry in pipeline.STAGES)
    data["device"] = "cuda"
    assert {entry.name for entry in pipeline.STAGES if "gpu" in resources_of(data, entry.name)} == NETWORK_STAGES
    data["resources"]["stages"] = {"features": {"gpus": 0}}
    assert "gpu" not in resources_of(data, "features")


@pytest.mark.parametrize("resources, message", [
    ({"stages": {"backbon": {"mem_mb": 10}}}, "resources.stages.backbon: no such stage"),
    ({"mem_mb": 0}, "resources.mem_mb = 0: expected an integer >= 1"),
    ({"stages": {"features": {"runtime": -1}}}, "resources.stages.features.runtime = -1"),
    ({"gpus": "one"}, "resources.gpus = 'one': expected int"),
])
def test_bad_resources_are_named(resources, message):
    with pytest.raises(ParamsError, match=re.escape(message)):
        resources_of(params(**resources), "backbone")
