"""bot.py's limit_heap_fragmentation: blocks of 64 KiB and more get a mapping of their own (glibc), so
freeing them hands the memory back (the figure is bench/memory_inflight.py's)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Run in a fresh interpreter: the allocator's state of this test process is its own business. glibc's
# mallinfo2() tells how many bytes sit in blocks with a mapping of their own (hblkhd). A 2 MiB block is
# allocated and freed first: by default that raises glibc's threshold above it, and the next 1 MiB block
# then comes from the heap. (1 MiB, not a size nearer the threshold: glibc serves a request from the top of
# the heap whenever the top is large enough, whatever the threshold, and how large the top is depends on
# the interpreter's history; seen with a 100 KB block under the full suite. The top stays far below 1 MiB.)
PROBE = """
import ctypes, sys
sys.path.insert(0, sys.argv[1])
import bot

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[2] == "limit":
    assert bot.limit_heap_fragmentation()
libc.free(libc.malloc(2 * 1024 * 1024))
before = libc.mallinfo2().hblkhd
block = libc.malloc(1024 * 1024)
print(libc.mallinfo2().hblkhd - before)
libc.free(block)
"""


def mapped_growth(mode: str) -> int:
    """Bytes added to mapped blocks by a 1 MiB allocation in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT), mode],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(out.stdout.strip())


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)
def test_large_blocks_get_their_own_mapping() -> None:
    assert mapped_growth("default") == 0  # the probe can tell: by default the block came from the heap
    assert mapped_growth("limit") >= 1024 * 1024


def test_an_operators_setting_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(ROOT))
    import bot

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert bot.limit_heap_fragmentation() is False
