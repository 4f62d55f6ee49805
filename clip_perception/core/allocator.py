"""Keep large buffers in the process heap instead of fresh mmap()s (glibc only).

Why: glibc serves every allocation above its mmap threshold (128 KB, growing only up to 32 MB
after frees) with a new mapping and unmaps it on free, so each 640x480 frame buffer (a 900 KB
message take, the decoded frame, the normalised batch) is page-faulted in again; on our KVM
machines that fault-in cost ~1.5 ms per message in the executor thread alone
(docs/results/node.md). With a fixed high threshold and a trim threshold above it, freed
frame buffers stay in the heap and are reused.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's maximum; larger than any frame we handle
TRIM_THRESHOLD = 128 * 1024 * 1024  # keep up to this much freed memory at the heap top


def keep_large_buffers() -> bool:
    """Raise glibc's mmap/trim thresholds for this process; False (logged) when not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError) as exc:
        logger.debug("no glibc mallopt (%s: %s); allocator left as is", name, exc)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and \
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if not ok:
        logger.debug("mallopt refused the thresholds; allocator left as is")
    return ok
