"""What a local run may hold of this machine, and which GPU a job takes when there are several."""

import subprocess
import sys

from zsseg.machine import claim_gpu, gpu_count, memory_mb


def test_gpu_count_follows_cuda_visible_devices_then_the_driver(tmp_path):
    driver = tmp_path / "gpus"
    assert gpu_count({}, driver) == 0
    driver.mkdir()
    for address in ("0000:01:00.0", "0000:02:00.0", "0000:03:00.0"):
        (driver / address).mkdir()
    assert gpu_count({}, driver) == 3
    assert gpu_count({"CUDA_VISIBLE_DEVICES": "1"}, driver) == 1
    assert gpu_count({"CUDA_VISIBLE_DEVICES": "GPU-5d1f,GPU-77aa"}, driver) == 2
    assert gpu_count({"CUDA_VISIBLE_DEVICES": ""}, driver) == 0
    assert gpu_count({"CUDA_VISIBLE_DEVICES": "-1"}, driver) == 0
    assert gpu_count({"CUDA_VISIBLE_DEVICES": "0,-1,1"}, driver) == 1   # CUDA stops at the invalid entry


def test_memory_is_the_machines_or_its_containers_limit(tmp_path):
    limit = tmp_path / "memory.max"
    limit.write_text("max\n")
    physical = memory_mb(cgroup=limit)
    assert physical > 0
    limit.write_text(f"{512 * 2**20}\n")
    assert memory_mb(cgroup=limit) == min(physical, 512)


CLAIM = """
import sys, time
from pathlib import Path
from zsseg.machine import claim_gpu
print(claim_gpu(sys.argv[2].split(","), Path(sys.argv[1])), flush=True)
time.sleep(30)
"""


def test_each_job_takes_a_gpu_no_other_job_holds_until_it_ends(tmp_path):
    """Real processes: the second and third jobs get the GPUs the earlier ones do not hold, a fourth none;
    a GPU is free again once its holder ends, however it ends."""
    gpus = "GPU-aaaa,GPU-bbbb,GPU-cccc"
    holders = []
    try:
        for _ in range(4):
            holder = subprocess.Popen([sys.executable, "-c", CLAIM, str(tmp_path), gpus], stdout=subprocess.PIPE,
                                      text=True)
            holders.append(holder)
        claimed = [holder.stdout.readline().strip() for holder in holders]
        assert sorted(claimed) == ["0", "1", "2", "None"]
        first = holders[claimed.index("0")]
        first.kill()
        first.wait()
        assert claim_gpu(gpus.split(","), tmp_path) == 0
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()
