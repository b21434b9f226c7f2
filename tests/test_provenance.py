"""The report's and the table's provenance: the CPU model as the kernel names it, the versions and thread
counts, written beside the tables of a real run."""

import importlib.metadata
import json
import platform

import pytest
import torch
import yaml

from zsseg.pipeline import SMALL_MODEL_THREADS
from zsseg.provenance import cpu_model

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu vme avx2

processor\t: 1
model name\t: AMD EPYC 7B13 64-Core Processor
"""


def test_cpu_model_is_the_kernels_model_name(tmp_path):
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    assert cpu_model(tmp_path / "cpuinfo") == "AMD EPYC 7B13 64-Core Processor"


def test_cpu_model_without_proc_falls_back_to_the_platform(tmp_path):
    assert cpu_model(tmp_path / "missing") == (platform.processor() or platform.machine())
    (tmp_path / "no_model").write_text("processor\t: 0\nvendor_id\t: GenuineIntel\n")
    assert cpu_model(tmp_path / "no_model") == (platform.processor() or platform.machine())


def this_cpu() -> str:
    """The model name read here independently: the first `model name` line of /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as handle:
            return next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pytest.skip("no model name in /proc/cpuinfo on this machine")


@pytest.mark.pipeline
def test_a_real_report_names_this_machine_and_its_versions(dvc_run):
    provenance = json.loads((dvc_run / "data/report/provenance.json").read_text())
    assert provenance["cpu_model"] == this_cpu()
    assert provenance["torch"] == importlib.metadata.version("torch")
    assert provenance["torch_cuda"] == (torch.version.cuda or "none")
    assert provenance["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert provenance["python"] == platform.python_version()
    assert provenance["device"] == "cpu"
    threads = yaml.safe_load((dvc_run / "params.yaml").read_text())["threads"]
    assert (provenance["network_threads"], provenance["small_model_threads"]) == (threads, SMALL_MODEL_THREADS)
    summary = (dvc_run / "data/report/summary.md").read_text()
    assert "## Provenance" in summary and f"| cpu_model | {this_cpu()} |" in summary
