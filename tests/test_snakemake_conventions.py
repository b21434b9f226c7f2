"""Snakemake's conventions for the rules of zsseg/pipeline.py: a benchmark file per job, and `snakemake --lint`
clean but for the lints docs/pipeline.md answers."""

import re
import subprocess
import time
from collections import Counter

from conftest import PROJECT_ROOT, tiny_params
from pipeline_runs import BIN, ENV, bench_script, dry_run, linked_project
from zsseg.pipeline import snakemake_rules

# The lints this workflow keeps, each answered in docs/pipeline.md ("Software environment").
ANSWERED_LINTS = {"Specify a conda environment or container for each rule."}


def test_every_job_has_a_benchmark_of_its_own(tmp_path):
    """Every job of the single run and the grid (each round, K and seed) names a TSV file no other job names."""
    jobs = dry_run(tmp_path / "project", tiny_params())
    benchmarks = {job: values["benchmark"] for job, values in jobs.items() if job[0] != "all"}
    assert {rule for rule, _ in benchmarks} == {rule.name for rule in snakemake_rules(tiny_params())}
    assert all(path and path.endswith(".tsv") for path in benchmarks.values()), benchmarks
    assert [path for path, count in Counter(benchmarks.values()).items() if count > 1] == []


def lints(output: str) -> dict[str, set[str]]:
    """`snakemake --lint`'s text, per linted item ("rule NAME", "snakefile PATH"): the titles of its lints.
    (`--lint json` prints the same text in Snakemake 9.27.1: its command line never passes the format on.)"""
    found = {}
    for block in re.split(r"^Lints for ", output, flags=re.M)[1:]:
        item = re.match(r"(rule \w+|snakefile .+?)(?: \(line .*\))?:$", block, flags=re.M).group(1)
        found[item] = set(re.findall(r"^    \* (.+):$", block, flags=re.M))
    return found


def test_lint_reports_only_the_answered_lints(tmp_path):
    project = linked_project(tmp_path / "project", tiny_params())
    result = subprocess.run([str(BIN / "snakemake"), "--lint"], cwd=project, env=ENV, capture_output=True, text=True)
    found = lints(result.stdout + result.stderr)
    assert set(found) == {f"rule {rule.name}" for rule in snakemake_rules(tiny_params())}
    assert {title for titles in found.values() for title in titles} == ANSWERED_LINTS
    documented = " ".join((PROJECT_ROOT / "docs" / "pipeline.md").read_text().split())
    assert all(title in documented for title in ANSWERED_LINTS)


def test_bench_table_reads_the_benchmark_of_a_real_job(tmp_path):
    """The cheapest real job: `demo`, a few seconds."""
    params = tiny_params()
    project = linked_project(tmp_path / "project", params)
    subprocess.run([str(BIN / "snakemake"), "--cores", "1", "data/demo"], cwd=project, env=ENV, check=True,
                   capture_output=True)
    (job,) = bench_script("table").rule_benchmarks(project, snakemake_rules(params))["demo"]
    assert job.seconds > 0 and job.max_rss_mib > 0


def test_bench_table_finds_each_rules_benchmarks_by_its_wildcards(tmp_path):
    """Files written by hand where every rule's pattern could claim another's: the per-round rule's
    `recursive_round_{round}` and the grid's `k{k}/s{seed}`."""
    table = bench_script("table")
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    files = {"data/benchmarks/round_0.tsv": "1.5", "data/benchmarks/recursive_round_1.tsv": "2.0",
             "data/benchmarks/recursive_round_2.tsv": "3.0", "data/k2/s0/benchmarks/recursive_round_1.tsv": "4.0",
             "data/k2/s0/benchmarks/round_0.tsv": "5.0", "data/kx/s0/benchmarks/round_0.tsv": "6.0"}
    for path, seconds in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(header + f"{seconds}\t0:00:01\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n")
    found = table.rule_benchmarks(tmp_path, snakemake_rules(tiny_params()))
    assert {rule: sorted(job.seconds for job in jobs) for rule, jobs in found.items()} == {
        "round_0": [1.5], "recursive_round": [2.0, 3.0], "recursive_round_k": [4.0], "round_0_k": [5.0]}
    assert all(job.max_rss_mib is None for jobs in found.values() for job in jobs)
    # Only the jobs of a run started at `since`.
    assert table.rule_benchmarks(tmp_path, snakemake_rules(tiny_params()), since=time.time() + 60) == {}
