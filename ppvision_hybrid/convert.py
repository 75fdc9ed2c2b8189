"""Convert an authors' checkpoint into a verified ppvision_hybrid ``.pdparams`` file (``ppvh-convert-weights``,
or ``python tools/convert_weights.py`` in a checkout: :func:`main`).

* ``src`` may be a PyTorch file (``.pth``/``.pth.tar``/``.pt``, zip or legacy format, read
  without PyTorch by :mod:`ppvision_hybrid.pth`) or a Paddle ``.pdparams``.
* Accepted layouts: a raw state dict, ``{'model': ...}`` or ``{'state_dict': ...}`` (``key``
  picks another entry, e.g. ``model_ema``); a ``module.`` prefix (DataParallel) is stripped.
* The family's registered converter maps the official names (:func:`.convert_checkpoint`);
  a ``.pdparams`` source already in our naming (e.g. MixFormer's PaddleClas weights) is only
  validated and re-saved.
* The result must load strictly into ``create_model(NAME)``: the class count is read from the
  checkpoint's classifier, a checkpoint without a classifier is a dense-mode (``features_only``)
  backbone. Unmapped keys and shape mismatches are errors naming the keys.
* ``dst`` is written atomically (temporary beside it, reloaded strictly, fsynced, renamed over
  it), so ``src == dst`` converts in place and an interrupted or failing conversion leaves the
  old ``dst`` as it was. A JSON record (``<dst>.json``: model, sha256 of input and output, key
  counts, class count) is written next to ``dst`` the same way.
"""
import argparse
import datetime
import json
import os
import sys

import numpy as np

from .io_atomic import atomic_file

__all__ = ["ConversionError", "convert", "read_checkpoint", "unwrap_state_dict", "main"]

WRAPPER_KEYS = ("model", "state_dict")


class ConversionError(Exception):
    """A checkpoint that cannot be converted as asked; the message says why."""


def _is_array(v):
    return isinstance(v, np.ndarray) or hasattr(v, "shape") and hasattr(v, "dtype")


def read_checkpoint(path):
    """The object stored in ``path`` (numpy arrays for tensors)."""
    if not os.path.isfile(path):
        raise ConversionError(f"source checkpoint not found: {path}")
    if path.endswith(".pdparams"):
        import paddle
        try:
            return paddle.load(path, return_numpy=True)
        except Exception as e:
            raise ConversionError(f"{path} is not a readable Paddle checkpoint ({type(e).__name__}: {e})") from e
    from .pth import PthError, load_pth
    try:
        return load_pth(path)
    except PthError as e:
        raise ConversionError(str(e)) from e


def unwrap_state_dict(obj, key=None):
    """The state dict inside ``obj``: raw, ``{'model': ...}``, ``{'state_dict': ...}`` or ``obj[key]``."""
    if not isinstance(obj, dict):
        raise ConversionError(f"the checkpoint holds a {type(obj).__name__}, not a dict of tensors")
    if key is not None:
        if key not in obj or not isinstance(obj[key], dict):
            raise ConversionError(f"--key {key!r}: no such dict in the checkpoint (top-level keys: {sorted(map(str, obj))[:20]})")
        obj = obj[key]
    elif obj and all(_is_array(v) for v in obj.values()):
        pass  # raw state dict
    else:
        wrapped = [k for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)]
        if not wrapped:
            raise ConversionError(
                "unknown checkpoint wrapper: expected a raw state dict or {'model': ...} / "
                f"{{'state_dict': ...}}, got top-level keys {sorted(map(str, obj))[:20]}. "
                "Pass --key NAME to pick the entry holding the weights.")
        obj = obj[wrapped[0]]
    if not obj:
        raise ConversionError("the state dict in the checkpoint is empty")
    not_arrays = [k for k, v in obj.items() if not _is_array(v)]
    if not_arrays:
        raise ConversionError(f"entries that are not tensors in the state dict: {not_arrays[:10]}")
    keys = list(obj)
    if all(k.startswith("module.") for k in keys):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def _classifier_info(head_keys, state):
    """(class_num, features_only) implied by the converted state dict."""
    present = [k for k in head_keys if k in state]
    if not present:
        return None, True
    bias = [k for k in present if k.endswith("bias") and np.asarray(state[k]).ndim == 1]
    if bias:
        return int(np.asarray(state[bias[0]]).shape[0]), False
    return int(np.asarray(state[present[0]]).shape[-1]), False


def convert(model_name, src, dst, key=None, verbose=True):
    """Convert ``src`` into ``dst`` for ``model_name``; returns the JSON record (dict)."""
    import paddle
    import ppvision_hybrid as pvh
    from .registry import get_model_spec, _CONVERTERS
    from .weights import CheckpointError, check_state_dict, load_checkpoint_file, sha256sum

    try:
        spec = get_model_spec(model_name)
    except KeyError as e:
        raise ConversionError(str(e.args[0])) from e
    source = unwrap_state_dict(read_checkpoint(src), key)
    with paddle.LazyGuard():  # names only: skip initialising the weights
        probe = pvh.create_model(model_name)
        own_keys, head_keys = set(probe.state_dict()), probe.classifier_state_keys()
        if not all(k in own_keys for k in source):  # maybe a dense-mode checkpoint in our naming
            own_keys |= set(pvh.create_model(model_name, features_only=True).state_dict())
    del probe
    # Only a Paddle file can already be in our naming: a PyTorch file always goes through the
    # converter, because Focal/TransXNet names can coincide with ours while Linear weights still
    # need their transpose (a square Linear would otherwise load silently wrong).
    already_ours = src.endswith(".pdparams") and all(k in own_keys for k in source)
    if already_ours:
        state, how = {k: np.asarray(v) for k, v in source.items()}, "validated (already in ppvision_hybrid naming)"
    elif spec.family in _CONVERTERS:
        try:
            state = pvh.convert_checkpoint(model_name, source)
        except KeyError as e:
            raise ConversionError(f"unmapped checkpoint keys: {e.args[0]}") from e
        except ValueError as e:
            raise ConversionError(str(e)) from e
        how = f"converted by the '{spec.family}' converter"
    else:
        foreign = [k for k in source if k not in own_keys]
        raise ConversionError(f"family '{spec.family}' has no converter and {len(foreign)} keys are not "
                              f"{model_name} parameter names: {foreign[:10]}")
    dropped = [k for k in source if not already_ours and k.endswith("num_batches_tracked")]

    class_num, features_only = _classifier_info(head_keys, state)
    kwargs = dict(features_only=True) if features_only else dict(class_num=class_num)
    model = pvh.create_model(model_name, **kwargs)
    try:
        check_state_dict(model, state, drop_head_if_mismatch=False)
    except CheckpointError as e:
        raise ConversionError(str(e)) from e
    model.set_state_dict({k: np.asarray(v) for k, v in state.items()})

    src_sha256 = sha256sum(src)  # before writing: with --src X --dst X the source is replaced
    arrays = {k: np.asarray(v) for k, v in state.items()}
    with atomic_file(dst) as tmp:
        paddle.save(arrays, tmp)
        # Reload what was written: the file itself must load strictly before it replaces dst.
        pvh.load_state_dict_checked(model, load_checkpoint_file(tmp), drop_head_if_mismatch=False,
                                    verbose=False)
        dst_sha256 = sha256sum(tmp)
    record = dict(
        model=model_name, family=spec.family, how=how,
        src=os.path.abspath(src), src_sha256=src_sha256,
        dst=os.path.abspath(dst), dst_sha256=dst_sha256,
        source_keys=len(source), converted_keys=len(state), dropped_keys=len(dropped),
        class_num=class_num, features_only=features_only,
        stored_values=int(sum(int(np.prod(np.asarray(v).shape)) for v in state.values())),
        ppvision_hybrid=pvh.__version__, paddle=paddle.__version__,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    with atomic_file(dst + ".json") as tmp, open(tmp, "w") as f:
        json.dump(record, f, indent=2)
    if verbose:
        print(json.dumps(record, indent=2))
    return record


def main(argv=None):
    """``ppvh-convert-weights --model NAME --src FILE --dst FILE.pdparams [--key ENTRY]``: exit
    status 0 on success, 1 with a one-paragraph message otherwise. The JSON record is printed and
    written next to ``dst``.

        ppvh-convert-weights --model TransXNet_T --src transx-t.pth.tar --dst TransXNet_T.pdparams
        ppvh-convert-weights --model MixFormer_B4 --src MixFormer_B4.pdparams --dst MixFormer_B4.pdparams
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="registered model name, e.g. TransXNet_T")
    parser.add_argument("--src", required=True, help="authors' checkpoint (.pth/.pth.tar/.pdparams)")
    parser.add_argument("--dst", required=True, help="output .pdparams")
    parser.add_argument("--key", default=None, help="checkpoint entry holding the weights (default: auto)")
    args = parser.parse_args(argv)
    if not args.dst.endswith(".pdparams"):
        parser.error("--dst must end with .pdparams")
    try:
        convert(args.model, args.src, args.dst, key=args.key)
    except ConversionError as e:
        print(f"convert_weights: error: {e}", file=sys.stderr)
        return 1
    return 0
