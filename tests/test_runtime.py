"""Every stage that runs torch asks glibc to keep freed buffers (zsseg/runtime.py, keep_freed_memory): a
large tensor freed and allocated again must then come from the heap, not from a fresh mapping that the
kernel zero-fills. Measured in fresh processes with glibc's own counters (mallinfo2), against a control
process that does not ask."""

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
