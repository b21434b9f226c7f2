"""Each Snakemake job's resources (memory, runtime, GPUs) come from params.yaml's `resources`."""

import re

import pytest
import yaml

from conftest import PROJECT_ROOT
from pipeline_runs import dry_run
from zsseg import pipeline
from zsseg.config import ParamsError, parse_params

# The stages that train or apply a model on tensors, by hand: the network's (encode, backbone, features; evaluate,
# the report and the table run it over val images, which are not cached) and every method's.
GPU_STAGES = {"encode", "backbone", "features", "evaluate", "report", "table", "round_0", "self_training",
              "recursive_round", "recursion_without_pseudo_features", "recursion_with_pseudo_labelled_classifier",
              "ceiling"}


def params(**resources):
    data = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    data["resources"].update(resources)
    return data


def resources_of(data, name):
    return pipeline.job_resources(parse_params(data), pipeline.stage(name))


def test_every_job_of_a_dry_run_asks_for_the_resources_in_params_yaml(tmp_path):
    data = params()
    jobs = dry_run(tmp_path / "project", data, "--executor", "slurm", "--jobs", "10")
    for (rule, _), job in jobs.items():
        if rule == "all":   # a target, run by no job
            continue
        stage = rule.removesuffix("_k")
        own = data["resources"]["stages"].get(stage, {})
        gpu_expected = data["device"] != "cpu" and stage in GPU_STAGES
        assert job["resources"]["mem_mb"] == own.get("mem_mb", data["resources"]["mem_mb"]), rule
        assert job["resources"]["runtime"] == own.get("runtime", data["resources"]["runtime"]), rule
        assert job["resources"].get("gpu") == (data["resources"]["gpus"] if gpu_expected else None), rule
    assert len(jobs) > 20


def test_a_stage_takes_its_own_values_over_the_defaults():
    data = params(mem_mb=1000, runtime=5, gpus=2, stages={"backbone": {"mem_mb": 64000, "runtime": 2880}})
    assert resources_of(data, "backbone") == {"mem_mb": 64000, "runtime": 2880, "gpu": 2}
    assert resources_of(data, "features") == {"mem_mb": 1000, "runtime": 5, "gpu": 2}
    assert resources_of(data, "round_0") == {"mem_mb": 1000, "runtime": 5, "gpu": 2}
    assert resources_of(data, "samples") == {"mem_mb": 1000, "runtime": 5}


def test_no_gpu_is_asked_for_on_the_cpu_or_for_a_stage_without_a_model():
    data = params()
    data["device"] = "cpu"
    assert all("gpu" not in resources_of(data, entry.name) for entry in pipeline.STAGES)
    data["device"] = "cuda"
    assert {entry.name for entry in pipeline.STAGES if "gpu" in resources_of(data, entry.name)} == GPU_STAGES
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


def test_a_stage_reads_the_device_exactly_when_it_declares_a_gpu():
    """A stage without `gpu` runs on the CPU whatever `device` says: its module does not read it."""
    for entry in pipeline.STAGES:
        assert ("device" in pipeline.declared_params(entry.module)) == entry.gpu, entry.name
    assert {entry.name for entry in pipeline.STAGES if entry.gpu} == GPU_STAGES


class SubmittedJob:
    """What the Slurm executor reads of a job to write its sbatch call."""

    def __init__(self, resources: dict, threads: int) -> None:
        self.resources = type("Resources", (dict,), {"__getattr__": dict.__getitem__})(resources)
        self.threads = threads
        self.is_group = lambda: False


def sbatch_call(job: dict) -> str:
    """The sbatch call snakemake-executor-plugin-slurm makes for a job, from its own functions."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    submitted = SubmittedJob(job["resources"], job["threads"])
    call = get_submit_command(submitted, {"run_uuid": "zsseg", "slurm_logfile": "job.log", "comment_str": "rule",
                                          "account": "", "partition": "", "workdir": "."})
    return call + set_gres_string(submitted)


@pytest.mark.parametrize("device", ["cpu", "cuda", "auto"])
def test_sbatch_asks_for_a_gpu_on_exactly_the_jobs_that_train_or_apply_a_model(tmp_path, device):
    data = params(gpus=1, stages={"evaluate": {"gpus": 0}})
    data["device"] = device
    jobs = dry_run(tmp_path / "project", data, "--executor", "slurm", "--jobs", "10")
    assert len(jobs) > 150   # every job of the 5 K x 3 seeds grid and the single run
    for (rule, wildcards), job in jobs.items():
        if rule == "all":
            continue
        stage = rule.removesuffix("_k")
        call = sbatch_call(job)
        wants_gpu = device != "cpu" and stage in GPU_STAGES and stage != "evaluate"
        assert ("--gpus=1" in call) == wants_gpu, (rule, wildcards, call)
        # A job without a GPU never runs on CUDA: its stage reads no device, the device is cpu, or its command
        # sets it (evaluate here, whose resources say gpus: 0).
        runs_on_cpu = (stage not in GPU_STAGES or device == "cpu"
                       or job["command"].split(" 2>&1")[0].endswith("--set device=cpu"))
        assert wants_gpu or runs_on_cpu, (rule, job["command"])
        assert ("--set device=cpu" in job["command"]) == (device != "cpu" and stage == "evaluate"), rule


def test_a_local_run_holds_no_more_memory_than_the_machine_has(tmp_path):
    """The Snakefile declares the machine's memory (and GPUs) as Snakemake's limits on a local run: a job that
    asks for more is capped to it. --resources sets other limits; a cluster's jobs are not capped by this host."""
    from zsseg.machine import machine_resources

    data = params(stages={"backbone": {"mem_mb": 10**7}})
    project = tmp_path / "project"
    backbone = ("backbone", "")
    assert dry_run(project, data)[backbone]["resources"]["mem_mb"] == machine_resources()["mem_mb"]
    assert dry_run(project, data, "--resources", "mem_mb=5000")[backbone]["resources"]["mem_mb"] == 5000
    on_slurm = dry_run(project, data, "--executor", "slurm", "--jobs", "10")
    assert on_slurm[backbone]["resources"]["mem_mb"] == 10**7
