"""glibc malloc settings that keep tensor-sized blocks in the process between calls.

Paddle's CPU tensors come from glibc's ``malloc``. By default glibc hands a block above its
dynamic threshold (128 KiB at first, at most 32 MiB) to the kernel with ``munmap`` when it is
freed, and returns free memory at the top of the heap with ``brk`` beyond 128 KiB. A network's
activations are such blocks, freed and allocated again on every call, so every call of a dygraph
model, and of a Paddle Inference predictor that frees its intermediates (Paddle's default), faults
all of its pages in afresh. ``import ppvision_hybrid`` sets, through ``mallopt``, the largest mmap
threshold glibc accepts and a 2 GiB trim threshold (see :func:`keep_freed_memory`): freed blocks
then stay in the heap for the next call. Measurements: docs/deploy.md, "Memory allocator on
Linux".
"""
import ctypes
import os
import platform

#: ``PPVH_MALLOC_TUNING=0`` leaves glibc's settings alone
OPT_OUT = "PPVH_MALLOC_TUNING"
#: the user's own malloc settings, which win
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
#: ``mallopt`` parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2 (32 MiB on 64-bit systems)
MMAP_THRESHOLD = 32 << 20
#: ``mallopt`` takes an int: 2 GiB - 1 is the largest trim threshold it can set
TRIM_THRESHOLD = (1 << 31) - 1


def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def keep_freed_memory(environ=None, libc=None):
    """Set glibc's mmap threshold to 32 MiB and its trim threshold to 2 GiB (``mallopt``) unless
    ``PPVH_MALLOC_TUNING=0``, the user set a ``MALLOC_*_`` variable or a ``glibc.malloc`` tunable,
    or the C library is not glibc. Returns True when both settings took."""
    environ = os.environ if environ is None else environ
    if environ.get(OPT_OUT, "1") == "0" or any(key in environ for key in USER_SETTINGS):
        return False
    if "glibc.malloc" in environ.get("GLIBC_TUNABLES", ""):
        return False
    libc = _glibc() if libc is None else libc
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    # the mmap threshold first: setting it also stops glibc from moving it with each free
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD,
                                                                                       TRIM_THRESHOLD))
