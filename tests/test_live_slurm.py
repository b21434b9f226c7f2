"""The parts of `make test-cluster` (tests/live_slurm.py) that can be checked without starting Slurm."""

import ipaddress
import re

import pytest

import live_slurm


def test_without_root_the_cluster_target_fails_with_a_reason(monkeypatch):
    monkeypatch.setattr(live_slurm.os, "geteuid", lambda: 1000)
    with pytest.raises(SystemExit) as raised:
        live_slurm.install()
    assert "needs root and apt-get" in str(raised.value) and "Nothing was tested" in str(raised.value)


def test_without_apt_the_cluster_target_fails_with_a_reason(monkeypatch):
    monkeypatch.setattr(live_slurm.os, "geteuid", lambda: 0)
    monkeypatch.setattr(live_slurm.shutil, "which", lambda tool: None)
    with pytest.raises(SystemExit, match="lacks apt-get"):
        live_slurm.install()


def test_every_address_in_the_configuration_is_the_loopback(tmp_path):
    text = live_slurm.slurm_conf(tmp_path)
    addresses = re.findall(r"\d+\.\d+\.\d+\.\d+", text)
    assert addresses and all(ipaddress.ip_address(address).is_loopback for address in addresses)
    settings = dict(line.split("=", 1) for line in text.splitlines() if not line.startswith(("NodeName", "Partition")))
    assert settings["SlurmctldHost"] == "localhost(127.0.0.1)"
    # Without an accounting database and cgroups: what the executor's squeue status checks rely on.
    assert settings["AccountingStorageType"] == "accounting_storage/none"
    flags = live_slurm.CLUSTER_FLAGS
    first_check = int(flags[flags.index("--slurm-init-seconds-before-status-checks") + 1])
    # The executor falls back to sacct (which sees no job here) when finished jobs leave squeue too soon.
    assert int(settings["MinJobAge"]) >= 3 * first_check
    assert all(str(tmp_path) in settings[key] for key in ("StateSaveLocation", "SlurmdSpoolDir", "SlurmctldLogFile"))


def test_job_ids_are_read_per_rule_from_snakemakes_log():
    log = """
rule backbone_k:
    jobid: 5
    wildcards: k=2, seed=0
Job 5 has been submitted with SLURM jobid 41 (log: x/41.log).
localrule table:
    jobid: 9
Job 9 has been submitted with SLURM jobid 42 (log: x/42.log).
"""
    assert live_slurm.submitted_jobs(log) == {"41": "backbone_k", "42": "table"}
