"""Checkpoints laid out as PaddleClas does, written so that a kill at any moment never leaves a
checkpoint that silently loads wrong.

``output_dir/<Arch.name>/{epoch_N,latest,best_model}.{pdparams,pdopt,pdstates}`` (+ ``.pdema``
with EMA). A save is a small journal:

1. every file is written completely to ``<file>.tmp<pid>`` in the same folder and fsynced;
2. ``.pdstates`` (which records the sha256 of each sibling file) is renamed into place first:
   this is the commit point;
3. the data files are renamed into place (``os.replace`` is atomic on POSIX).

Killed before step 2, the old set is untouched. Killed during step 3, the new ``.pdstates``
names files whose complete temporaries are still on disk; :func:`load_resume_states` finishes
those renames (roll forward) before loading. A file that matches neither is reported as corrupt
and nothing is loaded. A write that fails (a full disk included) removes its temporaries.

The engine publishes an epoch as ``epoch_N`` first, then ``best_model`` (when it is a new best),
then ``latest``: the record of a new best in ``latest`` exists only after ``best_model`` holds
it. A run stopped in between leaves ``latest`` at the previous epoch; a resume from ``epoch_N``
itself repairs ``best_model`` (:func:`repair_best_model`). The same ``.pdstates`` checksums are
verified when a checkpoint is loaded as ``Global.pretrained_model``.
"""
import contextlib
import glob
import hashlib
import os
import pickle
import shutil

import paddle

from ..io_atomic import fault_point, fsync_dir, fsync_file
from ..weights import CheckpointError, check_state_dict, load_checkpoint_file, load_state_dict_checked

__all__ = ["save_checkpoint", "copy_checkpoint", "load_resume_states", "checkpoint_files",
           "verify_checkpoint_files", "verify_params_file", "repair_best_model",
           "newest_epoch_checkpoint",
           "optimizer_state_to_structured", "optimizer_state_from_structured", "CheckpointError",
           "SUFFIXES"]

SUFFIXES = (".pdparams", ".pdopt", ".pdema")  # data files; ".pdstates" is the commit record


_STRUCT = "@param:"  # marks an optimizer-state key rewritten to a structured parameter name


def _rename_prefix(key, mapping):
    """``'<name>_moment1_0'`` -> ``'<mapping[name]>_moment1_0'`` (longest matching prefix)."""
    if key in mapping:
        return mapping[key]
    cut = len(key)
    while True:
        cut = key.rfind("_", 0, cut)
        if cut <= 0:
            return None
        if key[:cut] in mapping:
            return mapping[key[:cut]] + key[cut:]


def _rewrite(state, mapping):
    out = {}
    for k, v in state.items():
        if isinstance(v, dict) and k == "master_weights":
            out[k] = {(_rename_prefix(n, mapping) or n): t for n, t in v.items()}
        elif isinstance(v, dict):
            out[k] = v  # LR_Scheduler and other plain records
        else:
            out[_rename_prefix(k, mapping) or k] = v
    return out


def optimizer_state_to_structured(opt_state, model):
    """Key optimizer accumulators by structured parameter names (``layers.0.blocks.1...``)
    instead of Paddle's process-global unique names (``linear_37.w_0``), so a checkpoint resumes
    into any identically built model, whatever was constructed before it in the process."""
    mapping = {p.name: _STRUCT + n for n, p in model.named_parameters()}
    return _rewrite(opt_state, mapping)


def optimizer_state_from_structured(opt_state, model):
    mapping = {_STRUCT + n: p.name for n, p in model.named_parameters()}
    return _rewrite(opt_state, mapping)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tmp_name(path):
    return f"{path}.tmp{os.getpid()}"


def _remove_stale_tmps(prefix):
    for path in glob.glob(glob.escape(prefix) + ".pd*.tmp*"):
        try:
            os.remove(path)
        except OSError:
            pass


def _commit(pending):
    """Rename temp files into place: ``.pdstates`` first (the commit point), then the data."""
    pending = sorted(pending, key=lambda tf: not tf[1].endswith(".pdstates"))
    for tmp, final in pending:
        os.replace(tmp, final)
        fault_point("checkpoint file renamed")
    fsync_dir(os.path.dirname(pending[-1][1]) or ".")  # make the renames durable


@contextlib.contextmanager
def _staged_files():
    """Collects ``(temp, final)`` pairs; commits them (:func:`_commit`) when the block ends
    normally. Temp files that were not renamed into place (an error such as a full disk, an
    interrupt) are removed; a pair is registered before its temp file is written, so a write
    that fails half-way is removed too."""
    pending = []
    try:
        yield pending
        _commit(pending)
    finally:
        for tmp, _ in pending:
            if os.path.exists(tmp):
                os.remove(tmp)


def save_checkpoint(prefix, model_state, opt_state, states, ema_state=None):
    """Write ``prefix.{pdparams,pdopt[,pdema],pdstates}`` atomically (see module doc)."""
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
    _remove_stale_tmps(prefix)
    payloads = [(".pdparams", model_state), (".pdopt", opt_state)]
    if ema_state is not None:
        payloads.append((".pdema", ema_state))
    hashes = {}
    with _staged_files() as pending:
        for suffix, obj in payloads:
            tmp = _tmp_name(prefix + suffix)
            pending.append((tmp, prefix + suffix))
            paddle.save(obj, tmp)
            fault_point("checkpoint file written")
            fsync_file(tmp)
            hashes[suffix] = _sha256(tmp)
        record = dict(states)
        record["files_sha256"] = hashes
        tmp = _tmp_name(prefix + ".pdstates")
        pending.append((tmp, prefix + ".pdstates"))
        with open(tmp, "wb") as f:
            pickle.dump(record, f, protocol=4)
            f.flush()
            os.fsync(f.fileno())
        fault_point("checkpoint record written")
    return prefix


def copy_checkpoint(src_prefix, dst_prefix):
    """Publish an already written checkpoint under another name (``latest``, ``best_model``)
    with the same temp-then-rename discipline."""
    _remove_stale_tmps(dst_prefix)
    with _staged_files() as pending:
        for suffix in SUFFIXES + (".pdstates",):
            src = src_prefix + suffix
            if not os.path.exists(src):
                if suffix == ".pdema" and os.path.exists(dst_prefix + suffix):
                    os.remove(dst_prefix + suffix)  # stale EMA from another run
                continue
            tmp = _tmp_name(dst_prefix + suffix)
            pending.append((tmp, dst_prefix + suffix))
            shutil.copyfile(src, tmp)
            fault_point("checkpoint file copied")
            fsync_file(tmp)
    return dst_prefix


def checkpoint_files(prefix):
    return {s: prefix + s for s in SUFFIXES + (".pdstates",) if os.path.exists(prefix + s)}


def _read_states(path):
    try:
        with open(path, "rb") as f:
            states = pickle.load(f)
    except Exception as e:
        raise CheckpointError(f"{path} is not a readable checkpoint state file "
                              f"({type(e).__name__}: {e}); it may be truncated or corrupt") from e
    if not isinstance(states, dict):
        raise CheckpointError(f"{path} does not hold a checkpoint state dict")
    return states


def newest_epoch_checkpoint(folder):
    """The ``epoch_N`` prefix with the highest N whose ``.pdstates`` exists in ``folder``, or None."""
    found = []
    for path in glob.glob(os.path.join(glob.escape(folder), "epoch_*.pdstates")):
        tail = os.path.basename(path)[len("epoch_"):-len(".pdstates")]
        if tail.isdigit():
            found.append((int(tail), path[:-len(".pdstates")]))
    return max(found)[1] if found else None


def _raise_missing(prefix, missing):
    folder = os.path.dirname(prefix) or "."
    newest = newest_epoch_checkpoint(folder)
    if newest and os.path.basename(prefix) == "latest":
        raise CheckpointError(
            f"cannot resume from '{prefix}': missing {missing} (the run was probably stopped "
            f"after writing {os.path.basename(newest)} and before updating 'latest'). The newest "
            f"complete checkpoint is {newest}: resume with -o Global.checkpoints={newest}")
    present = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    hint = f" The newest epoch checkpoint there is {newest}." if newest else ""
    raise CheckpointError(f"cannot resume from '{prefix}': missing {missing}. Files in "
                          f"{folder}: {present[:20] or 'none'}.{hint} Global.checkpoints takes a "
                          f"prefix such as output/<Arch.name>/latest or output/<Arch.name>/epoch_3")


def verify_checkpoint_files(prefix, states, suffixes=SUFFIXES):
    """Check each of ``prefix + suffix`` that ``states['files_sha256']`` records against its
    sha256. A save killed after its commit point is completed (its temporaries renamed into
    place); any other mismatch is a :class:`CheckpointError` naming the file."""
    for suffix, digest in states.get("files_sha256", {}).items():
        if suffix not in suffixes:
            continue
        path = prefix + suffix
        if os.path.isfile(path) and _sha256(path) == digest:
            continue
        # roll forward a save that was killed after its commit point
        done = False
        for tmp in glob.glob(glob.escape(path) + ".tmp*"):
            if _sha256(tmp) == digest:
                os.replace(tmp, path)
                done = True
                print(f"[ppvision_hybrid] completed the interrupted save of {path}")
                break
        if not done:
            raise CheckpointError(
                f"{path} does not match the checksum recorded in {prefix}.pdstates: the file is "
                f"corrupt or was replaced outside the engine. Nothing was loaded. Use an intact "
                f"epoch_N checkpoint in {os.path.dirname(prefix) or '.'} instead.")


def verify_params_file(params_path):
    """For a ``.pdparams`` with a ``.pdstates`` beside it (a checkpoint written by the engine):
    check it against the recorded sha256 before it is loaded anywhere."""
    prefix = params_path[:-len(".pdparams")] if params_path.endswith(".pdparams") else params_path
    if os.path.isfile(prefix + ".pdstates"):
        verify_checkpoint_files(prefix, _read_states(prefix + ".pdstates"), (".pdparams",))


def _checkpoint_epoch(prefix):
    """The epoch recorded in an intact checkpoint at ``prefix``, or None."""
    try:
        states = _read_states(prefix + ".pdstates")
        verify_checkpoint_files(prefix, states)
    except (CheckpointError, OSError):
        return None
    return states.get("epoch")


def repair_best_model(folder, states, resumed_prefix=None):
    """Make ``folder/best_model`` the checkpoint that ``states['best']`` names, when a run was
    stopped after recording a new best but before ``best_model`` was written. Returns a message
    saying what was done (None when nothing was needed)."""
    best_epoch = (states.get("best") or {}).get("epoch") or 0
    if not best_epoch:
        return None
    best = os.path.join(folder, "best_model")
    if _checkpoint_epoch(best) == best_epoch:
        return None
    candidates = [os.path.join(folder, f"epoch_{best_epoch}")]
    if resumed_prefix and states.get("epoch") == best_epoch:
        candidates.insert(0, resumed_prefix)
    for source in candidates:
        if os.path.isfile(source + ".pdstates") and _checkpoint_epoch(source) == best_epoch:
            copy_checkpoint(source, best)
            return f"repaired {best}: it now holds epoch {best_epoch} (from {source}), the best recorded"
    return (f"{best} does not hold epoch {best_epoch}, the best recorded, and no intact checkpoint "
            f"of that epoch is left to restore it from")


def load_resume_states(prefix, model, optimizer=None, ema=None, arch_name=None):
    """Load a full training checkpoint for ``Global.checkpoints`` (strict: the model must match
    exactly; nothing is loaded unless every check passes). Returns the ``.pdstates`` dict."""
    if prefix.endswith(".pdparams"):
        prefix = prefix[:-len(".pdparams")]
    if not os.path.isfile(prefix + ".pdstates"):
        _raise_missing(prefix, [prefix + ".pdstates"])
    states = _read_states(prefix + ".pdstates")
    verify_checkpoint_files(prefix, states, tuple(
        suffix for suffix in SUFFIXES
        if not (suffix == ".pdopt" and not optimizer or suffix == ".pdema" and ema is None)))
    needed = [prefix + ".pdparams"] + ([prefix + ".pdopt"] if optimizer else [])
    missing = [p for p in needed if not os.path.isfile(p)]
    if missing:
        _raise_missing(prefix, missing)
    saved_arch = states.get("arch")
    params = load_checkpoint_file(prefix + ".pdparams")
    try:
        check_state_dict(model, params, drop_head_if_mismatch=False)
    except CheckpointError as e:
        note = (f" The checkpoint was written for Arch.name='{saved_arch}', this run builds "
                f"'{arch_name}'." if saved_arch and arch_name and saved_arch != arch_name else "")
        raise CheckpointError(f"cannot resume from '{prefix}': {e}.{note}") from None
    opt_state = None
    if optimizer is not None:
        opt_state = load_checkpoint_file(prefix + ".pdopt")
    ema_state = load_checkpoint_file(prefix + ".pdema") if ema is not None and os.path.isfile(prefix + ".pdema") else None
    # every check passed: now load
    load_state_dict_checked(model, params, drop_head_if_mismatch=False, verbose=False)
    if optimizer is not None:
        optimizer.set_state_dict(optimizer_state_from_structured(opt_state, model))
    if ema is not None and ema_state is not None:
        ema.load_state_dict(ema_state)
    return states
