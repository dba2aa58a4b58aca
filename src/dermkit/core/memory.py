"""Let freed large buffers (decoded images) go back to the operating system (glibc).

glibc serves an allocation from ``mmap`` when it is over a threshold, and returns it to the OS on
``free``. But the threshold is dynamic: the first free of a large mmapped block raises it to that
block's size (up to 32 MiB), and from then on Pillow's 16 MiB image blocks come from the heaps of
the threads that decoded them. After a burst of large photos those heaps stay resident: a server
that peaked at 0.6 GB stayed at 0.6 GB. Setting the threshold explicitly turns the dynamic rule off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
LARGE = 1024 * 1024


def map_large_allocations(threshold: int = LARGE) -> bool:
    """Serve allocations of ``threshold`` bytes and more from mmap in this process; False where not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt, nothing to tune
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
