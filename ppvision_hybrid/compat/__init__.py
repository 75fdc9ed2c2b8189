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

Versions other than the ones measured are refused with :class:`UnsupportedToolkitVersion`
(set ``PPVH_COMPAT_ALLOW_UNTESTED=1`` to try anyway, at your own risk).
"""
import contextlib
import os
from importlib import metadata

from . import fixes as _fixes

__all__ = ["apply_fixes", "revert_fixes", "fix_disabled", "applied_fixes", "FIXES",
           "SUPPORTED_VERSIONS", "UnsupportedToolkitVersion", "check_versions"]

#: exact versions these fixes were written and tested against.
SUPPORTED_VERSIONS = {"paddlepaddle": ("3.3.1",), "paddledet": ("2.6.0",), "paddleseg": ("2.8.0",)}

#: name -> (toolkit, builder returning the Patch list)
FIXES = {
    "concat_0d": ("both", None),  # built per toolkit below
    "det_export_full_graph": ("ppdet", _fixes.fix_det_export_full_graph),
    "det_multiclass_nms_pir": ("ppdet", _fixes.fix_multiclass_nms_pir),
    "det_bbox_post_branch_free": ("ppdet", _fixes.fix_bbox_post_branch_free),
    "seg_ce_float": ("paddleseg", _fixes.fix_seg_ce_float),
    "seg_train_loss_shape": ("paddleseg", _fixes.fix_seg_train_loss_shape),
}
_TOOLKITS = {"ppdet": "paddledet", "paddleseg": "paddleseg"}

# (fix name, toolkit) -> list of active Patch objects
_ACTIVE = {}


class UnsupportedToolkitVersion(RuntimeError):
    """The installed Paddle / toolkit version is not one the fixes were verified on."""


def _installed_version(dist):
    if dist == "paddlepaddle":
        import paddle
        return paddle.__version__
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_versions(toolkits=("ppdet", "paddleseg")):
    """Raise :class:`UnsupportedToolkitVersion` unless every version matches exactly."""
    problems = []
    for dist in ["paddlepaddle"] + [_TOOLKITS[t] for t in toolkits]:
        got = _installed_version(dist)
        if got not in SUPPORTED_VERSIONS[dist]:
            problems.append(f"{dist}=={got or 'not installed'} (supported: "
                            f"{', '.join(SUPPORTED_VERSIONS[dist])})")
    if problems and os.environ.get("PPVH_COMPAT_ALLOW_UNTESTED") != "1":
        raise UnsupportedToolkitVersion(
            "ppvision_hybrid.compat was written for exactly paddlepaddle 3.3.1, paddledet 2.6.0 "
            "and paddleseg 2.8.0; found " + "; ".join(problems) + ". Install the pinned versions "
            "(requirements-dense.txt) or set PPVH_COMPAT_ALLOW_UNTESTED=1 to try anyway.")


def _normalise_toolkits(toolkits):
    if isinstance(toolkits, str):
        toolkits = (toolkits,)
    toolkits = tuple(toolkits)
    unknown = [t for t in toolkits if t not in _TOOLKITS]
    if unknown:
        raise ValueError(f"unknown toolkit(s) {unknown}; choose from {sorted(_TOOLKITS)}")
    return toolkits


def _env_disabled():
    return {n.strip() for n in os.environ.get("PPVH_COMPAT_DISABLE", "").split(",") if n.strip()}


def apply_fixes(toolkits=("ppdet", "paddleseg"), disable=()):
    """Apply every fix for ``toolkits`` except those in ``disable`` (and PPVH_COMPAT_DISABLE).

    Idempotent: a fix already active is left alone. Returns the names active afterwards."""
    toolkits = _normalise_toolkits(toolkits)
    disable = set(disable) | _env_disabled()
    unknown = disable - set(FIXES)
    if unknown:
        raise ValueError(f"unknown fix name(s) {sorted(unknown)}; known: {sorted(FIXES)}")
    check_versions(toolkits)
    for name, (owner, builder) in FIXES.items():
        if name in disable:
            continue
        for toolkit in toolkits:
            if owner not in ("both", toolkit) or (name, toolkit) in _ACTIVE:
                continue
            patches = _fixes.fix_concat_0d(toolkit) if name == "concat_0d" else builder()
            for p in patches:
                p.apply()
            _ACTIVE[(name, toolkit)] = patches
    return applied_fixes()


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
