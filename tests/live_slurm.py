"""`make test-cluster`: the tiny K grid through Snakemake's Slurm executor, against a live Slurm started here.

1. Installs Slurm and munge from Debian's packages (root and apt-get; anything else is a clear failure).
2. Writes a single-node /etc/slurm/slurm.conf in which every address is 127.0.0.1 (the Slurm executor
   removes SLURM_* variables inside a job, so SLURM_CONF cannot point elsewhere); an existing file is
   put back at the end.
3. Starts munged, slurmctld and slurmd, and waits until the node is idle.
4. In two fresh clones of the project with the tiny params, runs the K = 2, 4 grid locally
   (`snakemake --cores N table`) and as Slurm jobs (`snakemake --profile workflow/profiles/slurm table`).
5. Checks that every metrics file and the table are byte-identical between the two.
6. Faults: removes one cell of the Slurm clone, reruns, `scancel`s its running backbone job once the
   training has saved its resume state, checks that Snakemake reports the failure, reruns the same command,
   checks that the backbone resumed from that state, and checks the metrics again.
7. Stops every daemon it started, by PID, also when a step fails.

Only the profile and the command line say anything about the cluster: the flags below are the ones a
cluster without an accounting database needs (docs in the README, "On a Slurm cluster").
"""

import filecmp
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

# Debian installs munged, Slurm's daemons and runuser in /usr/sbin, which a minimal environment (env -i, some
# CI runners) leaves off PATH; set before pipeline_runs copies the environment.
os.environ["PATH"] = os.pathsep.join(
    [os.environ.get("PATH", ""), *(directory for directory in ("/usr/local/sbin", "/usr/sbin", "/sbin")
                                   if directory not in os.environ.get("PATH", "").split(os.pathsep))])
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_runs import ENV, project_clone  # noqa: E402

SLURM_CONF = Path("/etc/slurm/slurm.conf")
PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
# This cluster has no accounting database (sacct returns no rows) and no accounts; a first status check
# after 7 s instead of 40 s keeps the tiny jobs fast.
CLUSTER_FLAGS = ["--slurm-status-command", "squeue", "--slurm-no-account",
                 "--slurm-init-seconds-before-status-checks", "7"]
# One thread per job, so that two jobs share the node's two cores (both runs use the same params). The backbone
# trains 8 epochs of 16 steps and saves its resume state after each step: about 3 s of training after the first
# save, in which the fault test cancels it.
TINY = {"threads": 1, "table.seeds": [0], "resources.mem_mb": 1000, "backbone.epochs": 8, "backbone.batch_size": 2,
        "backbone.checkpoint_minutes": 1e-9}
# The job cancelled in the fault test: the backbone of a cell, once its training has saved its resume state.
CANCELLED_RULE, CANCELLED_LOG = "backbone_k", Path("data/k2/s0/logs/backbone.log")
CANCEL_TRIGGER = Path("data/k2/s0/backbone.resume.pt")
GRID_TIMEOUT = 1500


def say(message: str) -> None:
    print(f"[test-cluster {time.strftime('%H:%M:%S')}] {message}", flush=True)


def install() -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit("make test-cluster installs Slurm and munge from Debian packages and writes /etc/slurm/slurm.conf: "
                 "it needs root and apt-get, and this machine lacks "
                 + ("root" if os.geteuid() != 0 else "apt-get") + ". Nothing was tested.")
    if all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    if subprocess.run(command, env=environment, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=environment, check=True, capture_output=True)
        subprocess.run(command, env=environment, check=True, capture_output=True)


def slurm_conf(scratch: Path) -> str:
    memory_mb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                         if line.startswith("MemTotal:"))) // 1024
    settings = {
        "ClusterName": "ci", "SlurmctldHost": "localhost(127.0.0.1)",
        "SlurmUser": "root", "SlurmdUser": "root",
        "AuthType": "auth/munge", "CredType": "cred/munge",
        "ProctrackType": "proctrack/linuxproc", "TaskPlugin": "task/none",
        "JobAcctGatherType": "jobacct_gather/none", "AccountingStorageType": "accounting_storage/none",
        "JobCompType": "jobcomp/none",
        "SelectType": "select/cons_tres", "SelectTypeParameters": "CR_Core_Memory",
        "MpiDefault": "none", "MailProg": "/bin/true", "ReturnToService": "2",
        # Finished jobs stay visible to squeue for 5 minutes: the executor's status checks rely on it.
        "MinJobAge": "300",
        "StateSaveLocation": scratch / "state", "SlurmdSpoolDir": scratch / "spool",
        "SlurmctldPidFile": scratch / "slurmctld.pid", "SlurmdPidFile": scratch / "slurmd.pid",
        "SlurmctldLogFile": scratch / "slurmctld.log", "SlurmdLogFile": scratch / "slurmd.log",
    }
    lines = [f"{key}={value}" for key, value in settings.items()]
    lines.append(f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={os.cpu_count()} "
                 f"RealMemory={memory_mb * 3 // 4} State=UNKNOWN")
    lines.append("PartitionName=debug Nodes=localhost Default=YES MaxTime=60 State=UP")
    return "\n".join(lines) + "\n"


class Daemons:
    """munged, slurmctld and slurmd, started in the foreground so that their PIDs are ours to stop."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.saved_conf: bytes | None = None

    def start(self) -> None:
        for directory in ("state", "spool"):
            (self.scratch / directory).mkdir(parents=True, exist_ok=True)
        if SLURM_CONF.exists():
            self.saved_conf = SLURM_CONF.read_bytes()
        SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SLURM_CONF.write_text(slurm_conf(self.scratch))
        if not Path("/etc/munge/munge.key").exists():
            subprocess.run(["mungekey", "--create"], check=True)
            shutil.chown("/etc/munge/munge.key", "munge", "munge")
        Path("/run/munge").mkdir(exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        self._spawn("munged", ["runuser", "-u", "munge", "--", "munged", "--foreground", "--force"])
        self._wait_for(lambda: subprocess.run(["sh", "-c", "munge -n | unmunge"], capture_output=True).returncode == 0,
                       "munge to answer", 20)
        self._spawn("slurmctld", ["slurmctld", "-D"])
        self._spawn("slurmd", ["slurmd", "-D", "-N", "localhost"])
        self._wait_for(lambda: self._node_state() == "idle", "the node to be idle", 60)

    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.scratch / f"{name}.out", "w")
        self.processes.append((name, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                      start_new_session=True)))
        say(f"started {name} (pid {self.processes[-1][1].pid})")

    @staticmethod
    def _node_state() -> str:
        result = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True)
        return result.stdout.strip()

    def _wait_for(self, condition, what: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            for name, process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode} while waiting for {what}: "
                                       f"{(self.scratch / f'{name}.out').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {seconds} s waiting for {what}")
            time.sleep(0.5)

    def stop(self) -> None:
        if shutil.which("scancel") and any(name == "slurmctld" for name, _ in self.processes):
            subprocess.run(["scancel", "--user", "root"], capture_output=True, timeout=30)
        for name, process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            say(f"stopped {name} (pid {process.pid})")
        if self.saved_conf is not None:
            SLURM_CONF.write_bytes(self.saved_conf)
        elif SLURM_CONF.exists():
            SLURM_CONF.unlink()


def snakemake_on_slurm(root: Path, cancel: tuple[str, Path] | None = None) -> tuple[int, str, list[str]]:
    """`snakemake --profile workflow/profiles/slurm table` in ``root``: its exit status, output, and the
    Slurm job ids it cancelled. ``cancel`` = (rule, a file its stage writes): one running job of that rule
    is cancelled once that file exists, so that the stage is killed mid-way."""
    command = ["timeout", "-k", "10", str(GRID_TIMEOUT), "snakemake", "--profile", "workflow/profiles/slurm",
               *CLUSTER_FLAGS, "table"]
    say("$ " + " ".join(command[4:]))
    log_path = root / f"slurm_run_{time.monotonic_ns()}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=root, env=ENV, stdout=log, stderr=subprocess.STDOUT)
        cancelled = []
        while process.poll() is None:
            if cancel and not cancelled and (root / cancel[1]).exists():
                queue = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %k"], capture_output=True,
                                       text=True).stdout.splitlines()
                running = [line.split()[0] for line in queue if line.split()[-1].startswith(f"rule_{cancel[0]}_")]
                if running:
                    subprocess.run(["scancel", running[0]], check=True)
                    cancelled.append(running[0])
                    say(f"scancel {running[0]}: a running job of rule {cancel[0]}, its stage under way ({cancel[1]} "
                        f"exists)")
            time.sleep(0.2)
    return process.returncode, log_path.read_text(), cancelled


def submitted_jobs(output: str) -> dict[str, str]:
    """Slurm job id -> rule, from Snakemake's log."""
    jobs, rules = {}, {}
    for line in output.splitlines():
        match = re.match(r"\s*(?:local)?rule (\w+):", line)
        if match:
            rule = match.group(1)
        match = re.match(r"\s*jobid: (\d+)", line)
        if match:
            rules[match.group(1)] = rule
        match = re.search(r"Job (\d+) has been submitted with SLURM jobid (\d+)", line)
        if match:
            jobs[match.group(2)] = rules.get(match.group(1), "?")
    return jobs


def results(root: Path) -> list[Path]:
    """Every file the comparison covers: each cell's metrics and confusion matrices, and the table's CSVs."""
    data = root / "data"
    files = [*data.glob("k*/s*/metrics/*"), *data.glob("k*/s*/confusion/*"), *data.glob("table/*.csv"),
             *data.glob("table/*.md")]
    return sorted(path.relative_to(root) for path in files if path.is_file())


def compare(local: Path, cluster: Path, what: str) -> None:
    names = results(local)
    if not names or names != results(cluster):
        raise AssertionError(f"{what}: different result files\nlocal: {names}\nslurm: {results(cluster)}")
    differ = [str(name) for name in names if not filecmp.cmp(local / name, cluster / name, shallow=False)]
    if differ:
        raise AssertionError(f"{what}: {len(differ)} of {len(names)} files differ: {differ}")
    say(f"{what}: all {len(names)} result files byte-identical to the local run")


def main() -> None:
    started = time.monotonic()
    install()
    base = Path(tempfile.mkdtemp(prefix="zsseg-slurm-"))
    daemons = Daemons(base / "slurm")
    passed = False
    try:
        daemons.start()
        say(f"Slurm is up ({time.monotonic() - started:.0f} s from the start): "
            + subprocess.run(["sinfo"], capture_output=True, text=True).stdout.strip().replace("\n", " | "))
        local, cluster = project_clone(base / "local", **TINY), project_clone(base / "cluster", **TINY)
        local_started = time.monotonic()
        subprocess.run(["snakemake", "--cores", str(os.cpu_count()), "table"], cwd=local, env=ENV, check=True,
                       capture_output=True)
        say(f"local grid: {time.monotonic() - local_started:.0f} s")

        cluster_started = time.monotonic()
        status, output, _ = snakemake_on_slurm(cluster)
        jobs = submitted_jobs(output)
        if status != 0:
            raise AssertionError(f"snakemake on Slurm failed ({status}):\n{output[-4000:]}")
        say(f"Slurm grid: {len(jobs)} Slurm jobs in {time.monotonic() - cluster_started:.0f} s "
            f"({time.monotonic() - started:.0f} s from nothing to the metrics)")
        for rule, count in sorted(Counter(jobs.values()).items()):
            ids = [job for job, name in jobs.items() if name == rule]
            say(f"  {rule:<40} {count:>2} job(s): {' '.join(ids)}")
        compare(local, cluster, "Slurm grid")

        cell = cluster / "data" / "k2" / "s0"
        shutil.rmtree(cell)
        shutil.rmtree(cluster / "data" / "table")
        status, output, cancelled = snakemake_on_slurm(cluster, cancel=(CANCELLED_RULE, CANCEL_TRIGGER))
        if not cancelled:
            raise AssertionError(f"no running job of {CANCELLED_RULE} was seen to cancel:\n{output[-3000:]}")
        if status == 0 or f"Error in rule {CANCELLED_RULE}" not in output:
            raise AssertionError(f"snakemake did not report the cancelled job {cancelled[0]} "
                                 f"(exit {status}):\n{output[-3000:]}")
        failure = next((line.strip() for line in output.splitlines() if cancelled[0] in line and "status" in line),
                       f"Error in rule {CANCELLED_RULE}")
        say(f"Snakemake reported the cancelled job and exited {status}: {failure}")
        if (cluster / CANCELLED_LOG.parent.parent / "backbone").exists():
            raise AssertionError("the cancelled backbone stage left an output behind")
        if not (cluster / CANCEL_TRIGGER).exists():
            raise AssertionError(f"the cancelled backbone stage left no resume state ({CANCEL_TRIGGER})")
        status, output, _ = snakemake_on_slurm(cluster)
        if status != 0:
            raise AssertionError(f"the rerun after scancel failed ({status}):\n{output[-4000:]}")
        say(f"rerun after scancel: {len(submitted_jobs(output))} Slurm jobs, exit 0")
        backbone_log = (cluster / CANCELLED_LOG).read_text()
        resumed = re.search(r"resuming from the training checkpoint .*: epoch (\d+) of \d+, step \d+ of \d+.*",
                            backbone_log)
        if not resumed or (cluster / CANCEL_TRIGGER).exists():
            raise AssertionError(f"the rerun's backbone did not resume from {CANCEL_TRIGGER} and delete it:\n"
                                 f"{backbone_log[-3000:]}")
        say(f"the rerun's backbone resumed from epoch {resumed.group(1)}: {resumed.group(0)}")
        compare(local, cluster, "after scancel and rerun")
        say(f"passed in {time.monotonic() - started:.0f} s")
        passed = True
    finally:
        daemons.stop()
        if passed:
            shutil.rmtree(base, ignore_errors=True)
        else:
            say(f"FAILED: the clones, Snakemake's output and the daemons' logs are kept in {base}")


if __name__ == "__main__":
    main()
