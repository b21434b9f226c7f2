"""Every stage that runs torch asks glibc to keep freed buffers (zsseg/runtime.py, keep_freed_memory): a
large tensor freed and allocated again must then come from the heap, not from a fresh mapping that the
kernel zero-fills. Measured in fresh processes with glibc's own counters (mallinfo2), against a control
process that does not ask. And a stage run from the command line ends its process without Python's teardown
(zsseg/runtime.py, exit_without_teardown), with its outputs and buffered lines intact."""

import ctypes
import ctypes.util
import json
import subprocess
import sys

import pytest

MAPPED_BYTES = """
import ctypes, ctypes.util, json, sys
import torch
from zsseg.runtime import configure_torch

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "stage":
    configure_torch(1, 0)
mapped = []
for _ in range(3):
    buffer = torch.ones(64 * 2**20 // 4)   # 64 MB, over glibc's largest default mapping threshold (32 MB)
    mapped.append(libc.mallinfo2().hblkhd)
    del buffer
print(json.dumps(mapped))
"""


def _has_mallinfo2() -> bool:
    try:
        ctypes.CDLL(ctypes.util.find_library("c")).mallinfo2
    except (OSError, AttributeError, TypeError):
        return False
    return True


def _mapped_bytes(mode: str) -> list[int]:
    result = subprocess.run([sys.executable, "-c", MAPPED_BYTES, mode], capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout)


@pytest.mark.skipif(not _has_mallinfo2(), reason="glibc >= 2.33 only (mallinfo2)")
def test_a_stage_reuses_freed_tensors_instead_of_mapping_them_again():
    big = 64 * 2**20
    control = _mapped_bytes("control")
    # The control: without the setting, each 64 MB tensor is its own mapping while it lives.
    assert all(mapped >= big for mapped in control), control
    assert all(mapped < big for mapped in _mapped_bytes("stage"))


# A stage body that writes an output, logs, and leaves a line in stdout's buffer (a pipe is block-buffered).
STAGE_SCRIPT = """
import atexit, sys
from pathlib import Path
from zsseg.stage import stage_run

atexit.register(lambda: print("teardown ran", flush=True))
mode, output = sys.argv[1], sys.argv[2]
sys.argv = [sys.argv[0], "--output", output]
argv = None if mode == "command_line" else ["--output", output]
with stage_run("probe", None, ("seed",), {"output": "file to write"}, argv, uses_torch=False) as stage:
    Path(stage.args.output).write_text("result")
    stage.log.info("body done")
    print("buffered line")
print("after the stage")
"""


def _run_stage_script(mode: str, output) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", STAGE_SCRIPT, mode, str(output)], capture_output=True, text=True)


def test_a_stage_run_from_the_command_line_ends_without_teardown_and_loses_nothing(tmp_path):
    finished = _run_stage_script("command_line", tmp_path / "out.txt")
    assert finished.returncode == 0, finished.stderr
    assert (tmp_path / "out.txt").read_text() == "result"
    assert "probe: body done" in finished.stderr
    assert finished.stdout == "buffered line\n"    # flushed, and nothing ran after the body: no atexit


def test_a_stage_called_with_argv_returns_to_its_caller(tmp_path):
    # The control: main(argv), as tests and `zsseg COMMAND` call it, returns and the process tears down.
    finished = _run_stage_script("called", tmp_path / "out.txt")
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout == "buffered line\nafter the stage\nteardown ran\n"


def test_a_stage_under_a_profiler_tears_down_so_that_the_profile_is_written(tmp_path):
    script = tmp_path / "stage_script.py"
    script.write_text(STAGE_SCRIPT)
    profile = tmp_path / "stage.prof"
    finished = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(profile), str(script), "command_line",
                               str(tmp_path / "out.txt")], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert profile.stat().st_size > 0
    assert finished.stdout.endswith("after the stage\nteardown ran\n")
