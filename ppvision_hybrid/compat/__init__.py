"""Our fixes that make the PyPI toolkits (paddledet 2.6.0, paddleseg 2.8.0) run on Paddle 3.3.1.

Usage (before building any toolkit model or loading a config)::

    from ppvision_hybrid import compat
    compat.apply_fixes()                 # both toolkits; idempotent
    compat.apply_fixes("ppdet")          # one toolkit
    with compat.fix_disabled("concat_0d"):  # tests: watch the pipeline break without a fix
        ...

The six fixes (names used by ``disable=`` and the environment variable
``PPVH_COMPAT_DISABLE=name1,name2``):

==========================  =========  ==========================================================
name                        toolkit    what breaks without it
==========================  =========  ==========================================================
concat_0d                   both       concat of 0-d tensors (RPN, R-CNN targets, cascade,
                                       bbox post-process, seg metrics)
det_export_full_graph       ppdet      Trainer.export: main_program of partial-graph to_static
det_multiclass_nms_pir      ppdet      export: legacy append_op NMS in a PIR program
det_bbox_post_branch_free   ppdet      export: branches of different rank in get_pred
seg_ce_float                paddleseg  CrossEntropyLoss int64 * float32 promotion
seg_train_loss_shape        paddleseg  core.train indexes l[0] of 0-d losses
==========================  =========  ==========================================================

Each fix is applied only where it is needed: before patching, a probe makes a tiny call on the
imported toolkit code that fails on the broken code (``compat.probes``). The PyPI wheels
(paddledet 2.6.0, paddleseg 2.8.0) on Paddle 3.3.1 have all six bugs; PaddleDetection /
PaddleSeg develop have none, and are left untouched. A probe that sees neither the known failure
nor the correct result stops with :class:`ProbeUndecided`, naming the probe.
"""
import contextlib
import os

from . import fixes as _fixes
from .probes import ProbeUndecided, run_probe

__all__ = ["apply_fixes", "revert_fixes", "fix_disabled", "applied_fixes", "probe_results",
           "forget_probes", "FIXES", "ProbeUndecided"]

#: name -> (toolkit, builder returning the Patch list), in the order they are probed and applied
FIXES = {
    "concat_0d": ("both", None),  # built per toolkit below
    "det_export_full_graph": ("ppdet", _fixes.fix_det_export_full_graph),
    "det_multiclass_nms_pir": ("ppdet", _fixes.fix_multiclass_nms_pir),
    "det_bbox_post_branch_free": ("ppdet", _fixes.fix_bbox_post_branch_free),
    "seg_ce_float": ("paddleseg", _fixes.fix_seg_ce_float),
    "seg_train_loss_shape": ("paddleseg", _fixes.fix_seg_train_loss_shape),
}
_TOOLKITS = ("ppdet", "paddleseg")

# (fix name, toolkit) -> list of active Patch objects
_ACTIVE = {}
# (fix name, toolkit) -> True (bug found: patched) / False (bug absent: untouched)
_PROBED = {}


def _normalise_toolkits(toolkits):
    if isinstance(toolkits, str):
        toolkits = (toolkits,)
    toolkits = tuple(toolkits)
    unknown = [t for t in toolkits if t not in _TOOLKITS]
    if unknown:
        raise ValueError(f"unknown toolkit(s) {unknown}; choose from {list(_TOOLKITS)}")
    return toolkits


def _env_disabled():
    return {n.strip() for n in os.environ.get("PPVH_COMPAT_DISABLE", "").split(",") if n.strip()}


def apply_fixes(toolkits=("ppdet", "paddleseg"), disable=()):
    """Probe every fix for ``toolkits`` (except those in ``disable`` and PPVH_COMPAT_DISABLE) and
    apply the ones whose bug the imported toolkit has.

    Each probe runs once per process (its answer is kept); a fix already active is left alone.
    Returns the names active afterwards. Raises :class:`ProbeUndecided` naming the probe when
    one cannot decide."""
    toolkits = _normalise_toolkits(toolkits)
    disable = set(disable) | _env_disabled()
    unknown = disable - set(FIXES)
    if unknown:
        raise ValueError(f"unknown fix name(s) {sorted(unknown)}; known: {sorted(FIXES)}")
    for name, (owner, builder) in FIXES.items():
        if name in disable:
            continue
        for toolkit in toolkits:
            key = (name, toolkit)
            if owner not in ("both", toolkit) or key in _ACTIVE:
                continue
            if key not in _PROBED:
                _PROBED[key] = run_probe(name, toolkit)
            if not _PROBED[key]:
                continue
            patches = _fixes.fix_concat_0d(toolkit) if name == "concat_0d" else builder()
            for p in patches:
                p.apply()
            _ACTIVE[key] = patches
    return applied_fixes()


def probe_results():
    """{(fix name, toolkit): "patched" | "not needed" | "probed, not applied"} for every fix
    probed so far in this process."""
    return {key: ("patched" if key in _ACTIVE else "not needed" if not found
                  else "probed, not applied") for key, found in sorted(_PROBED.items())}


def forget_probes(names=None):
    """Undo the named fixes (all when None) and forget their probe answers, so the next
    :func:`apply_fixes` probes the toolkit code again (tests swap that code)."""
    revert_fixes(names)
    for key in [k for k in _PROBED if names is None or k[0] in names]:
        del _PROBED[key]


def revert_fixes(names=None):
    """Undo the named fixes (all when ``names`` is None)."""
    if isinstance(names, str):
        names = (names,)
    for key in [k for k in list(_ACTIVE) if names is None or k[0] in names][::-1]:
        for p in reversed(_ACTIVE.pop(key)):
            p.revert()


def applied_fixes():
    return sorted({name for name, _ in _ACTIVE})


@contextlib.contextmanager
def fix_disabled(*names):
    """Temporarily undo fixes (for tests that show each fix is needed), then restore them."""
    unknown = set(names) - set(FIXES)
    if unknown:
        raise ValueError(f"unknown fix name(s) {sorted(unknown)}")
    keys = [k for k in _ACTIVE if k[0] in names]
    revert_fixes(names)
    try:
        yield
    finally:
        for name, toolkit in keys:
            apply_fixes(toolkit, disable=set(FIXES) - {name})
