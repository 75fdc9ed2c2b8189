"""Shims that let the same code run on Paddle 3.3.1 (the target) and Paddle 2.6.2 (the newest
``paddlepaddle-gpu`` wheel on PyPI). Every shim is a no-op on the Paddle 3.3.1 code paths
(dygraph and PIR ``to_static``); see docs/paddle26.md for what was measured on 2.6.2.

Differences handled here (measured with the 2.6.2 CPU wheel, Python 3.11):

* **zlib before paddle.** On 2.6.2 any zlib compression after ``import paddle`` crashes the
  process with SIGSEGV (``zlib.compress``, ``numpy.savez_compressed``, PNG encoding in OpenCV and
  Pillow) unless Python's ``zlib`` module was imported *before* paddle. This module imports
  ``zlib`` first, which helps only when it is itself imported before paddle; entry points
  (tools/*.py) therefore start with ``import zlib``. :func:`zlib_imported_before_paddle` checks
  the order.
* **Pad amounts under the legacy static graph.** ``paddle.jit.to_static`` on 2.6 (legacy
  program, not PIR) turns ``x.shape[i]`` of a dynamic dim into a 0-d int32 Variable, and
  ``F.pad(x, [0, var, 0, var])`` then fails with ``_set_int32s_attr(): incompatible function
  arguments``. :func:`pad_arg` turns such a list into the 1-D int32 tensor ``F.pad`` accepts.
* **GPU builds without code for the GPU.** A Paddle GPU wheel built without kernels for the
  device's compute capability does not fail: its own kernels silently return garbage. Measured
  on an H100 (sm_90) with the PyPI ``paddlepaddle-gpu`` 2.6.2 wheel (CUDA 11.8, no sm_90 code):
  ``x + 1`` was off by up to 20.7 while cuBLAS matmuls were right, and every model's output was
  wrong. ``inference.check_gpu_kernels`` computes one known answer and raises instead (it lives
  there because ``inference.py`` is on the model-free deploy side, which never imports paddle.nn code).
* **Keyword arguments Paddle 2.6 lacks**: ``KaimingNormal(mode=...)`` and
  ``AdamW(amsgrad=...)`` (both added in 3.x). :func:`accepts_kwarg` tells whether the installed
  Paddle takes one.
"""
import zlib  # noqa: F401  (must precede paddle on 2.6.x, see the module docstring)
import inspect
import sys

import paddle

__all__ = ["PADDLE_VERSION", "IS_PADDLE_2", "zlib_imported_before_paddle", "accepts_kwarg",
           "in_legacy_static_mode", "pad_arg"]


def _parse_version(text):
    parts = []
    for piece in text.split(".")[:3]:
        digits = ""
        for ch in piece:  # leading digits only: "0rc1" -> 0
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits) if digits else 0)
    return tuple(parts + [0] * (3 - len(parts)))


#: (major, minor, patch) of the installed Paddle; develop builds report (0, 0, 0).
PADDLE_VERSION = _parse_version(paddle.__version__)
IS_PADDLE_2 = PADDLE_VERSION[0] == 2


def zlib_imported_before_paddle():
    """True when ``zlib`` entered ``sys.modules`` before ``paddle`` (import order is the dict
    insertion order of ``sys.modules``). Only matters on Paddle 2.6.x."""
    order = list(sys.modules)
    if "zlib" not in sys.modules or "paddle" not in sys.modules:
        return "paddle" not in sys.modules
    return order.index("zlib") < order.index("paddle")


def accepts_kwarg(func, name):
    """True when ``func`` (a function or a class, meaning its ``__init__``) takes keyword ``name``."""
    target = func.__init__ if inspect.isclass(func) else func
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def in_legacy_static_mode():
    """True while building a legacy (non-PIR) static program: ``to_static`` on Paddle 2.6, or on
    3.x with ``FLAGS_enable_pir_api=0``. False in dygraph and in PIR programs (3.x default)."""
    if paddle.in_dynamic_mode():
        return False
    in_pir_mode = getattr(paddle.framework, "in_pir_mode", None)
    return not (in_pir_mode is not None and in_pir_mode())


def pad_arg(pads):
    """Pad amounts for ``F.pad`` that work in every mode.

    Returns ``pads`` unchanged in dygraph and PIR programs (so Paddle 3.x behaves exactly as
    with a plain list). In a legacy static program, a list holding symbolic sizes (0-d or [1]
    Variables from ``x.shape`` of a dynamic dim) becomes a 1-D int32 tensor, the form the legacy
    ``pad3d`` op takes as its ``Paddings`` input.
    """
    if all(isinstance(p, int) for p in pads) or not in_legacy_static_mode():
        return pads
    pieces = []
    for p in pads:
        if isinstance(p, int):
            pieces.append(paddle.full([1], p, dtype="int32"))
        else:
            pieces.append(paddle.cast(p, "int32").reshape([1]))
    return paddle.concat(pieces, axis=0)
