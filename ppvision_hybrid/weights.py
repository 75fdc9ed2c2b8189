"""Weight loading shared by every family: local files, registered downloads with sha256,
strict name/shape verification (never a silent partial load), head dropping on a class-count
change, and a per-variant weight registry.
"""
import hashlib
import os
import shutil
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np
import paddle

__all__ = ["WeightEntry", "register_weights", "list_weights", "weights_cache_dir", "sha256sum",
           "load_checkpoint_file", "check_state_dict", "load_state_dict_checked", "load_pretrained",
           "download_weights", "CheckpointError"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as asked (corrupt, mismatched, unknown)."""


@dataclass
class WeightEntry:
    url: str
    sha256: str
    source: str  # "official release" | "converted from the authors' checkpoint" | "trained here"
    license: str = ""
    tag: str = "default"
    eval_transform: Dict = field(default_factory=lambda: dict(
        input_size=224, resize_short=256, crop_size=224, interpolation="bicubic",
        mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]))
    top1: float = None
    notes: str = ""


_WEIGHTS: Dict[str, List[WeightEntry]] = {}


def register_weights(model_name: str, entry: WeightEntry):
    _WEIGHTS.setdefault(model_name, []).append(entry)


def list_weights(model_name: str) -> List[WeightEntry]:
    from . import registry
    registry.get_model_spec(model_name)  # unknown names fail clearly
    return list(_WEIGHTS.get(model_name, []))


def weights_cache_dir() -> str:
    """``$PPVISION_HYBRID_HOME/weights`` or ``~/.cache/ppvision_hybrid/weights``."""
    home = os.environ.get("PPVISION_HYBRID_HOME",
                          os.path.join(os.path.expanduser("~"), ".cache", "ppvision_hybrid"))
    return os.path.join(home, "weights")


def sha256sum(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def download_weights(entry: WeightEntry, cache_dir: str = None) -> str:
    """Fetch ``entry.url`` into the cache (atomic rename after a sha256 check); reuse a
    verified cached file. A mismatching download is deleted and reported."""
    cache_dir = cache_dir or weights_cache_dir()
    os.makedirs(cache_dir, exist_ok=True)
    fname = os.path.basename(entry.url.split("?")[0])
    dst = os.path.join(cache_dir, fname)
    if os.path.exists(dst):
        if sha256sum(dst) == entry.sha256:
            return dst
        os.remove(dst)  # stale or corrupt cache entry: fetch again
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".part")
    os.close(fd)
    try:
        print(f"[ppvision_hybrid] downloading {entry.url} -> {dst}")
        with urllib.request.urlopen(entry.url) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
        got = sha256sum(tmp)
        if got != entry.sha256:
            raise CheckpointError(f"sha256 mismatch for {entry.url}: expected {entry.sha256}, "
                                  f"got {got}. The file was discarded.")
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dst


def load_checkpoint_file(path: str) -> Dict:
    """Load a ``.pdparams`` (or any ``paddle.save`` dict) with a clear error when it is not one."""
    if not os.path.isfile(path):
        alt = path + ".pdparams"
        if os.path.isfile(alt):
            path = alt
        else:
            raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = paddle.load(path, return_numpy=True)
    except Exception as e:  # paddle raises many types for truncated/garbage files
        raise CheckpointError(f"{path} is not a readable Paddle checkpoint ({type(e).__name__}: {e}). "
                              f"It may be truncated or corrupt.") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


def _shape(v):
    return tuple(v.shape)


def check_state_dict(model, state_dict, drop_head_if_mismatch=True):
    """Compare names and shapes. Returns ``(state_dict_to_load, dropped_head_keys)``; raises
    :class:`CheckpointError` naming every missing, unexpected or mismatched key otherwise."""
    own = model.state_dict()
    head = set(model.classifier_state_keys()) if hasattr(model, "classifier_state_keys") else set()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [(k, _shape(state_dict[k]), tuple(own[k].shape)) for k in own
                  if k in state_dict and _shape(state_dict[k]) != tuple(own[k].shape)]
    dropped = []
    if drop_head_if_mismatch and head and any(k in head for k, _, _ in mismatched):
        dropped = sorted(head)
        mismatched = [m for m in mismatched if m[0] not in head]
        missing = [k for k in missing if k not in head]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {missing[:20]}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {unexpected[:20]}")
    if mismatched:
        problems.append("shape mismatches ({}): {}".format(
            len(mismatched), [f"{k}: checkpoint {a} vs model {b}" for k, a, b in mismatched[:20]]))
    if problems:
        raise CheckpointError(f"checkpoint does not fit {type(model).__name__}: " + "; ".join(problems))
    to_load = {k: v for k, v in state_dict.items() if k not in dropped}
    return to_load, dropped


def load_state_dict_checked(model, state_dict, drop_head_if_mismatch=True, verbose=True):
    """Strictly load ``state_dict`` into ``model`` (the classifier may be dropped with a message
    when its class count differs)."""
    to_load, dropped = check_state_dict(model, state_dict, drop_head_if_mismatch)
    if dropped and verbose:
        msg = (f"classifier weights {dropped} were not loaded: the checkpoint's class count differs "
               f"from the model's (class_num={getattr(model, 'class_num', '?')}); the head stays "
               f"randomly initialised")
        warnings.warn(msg)
        print(f"[ppvision_hybrid] {msg}")
    to_load = {k: (v if isinstance(v, paddle.Tensor) else np.asarray(v)) for k, v in to_load.items()}
    model.set_state_dict(to_load)
    return dropped


def load_pretrained(model, model_name: str, pretrained, cache_dir: str = None):
    """``pretrained``: False (nothing), True (registered weights), or a local path / URL."""
    if pretrained is False or pretrained is None:
        return model
    if pretrained is True:
        entries = _WEIGHTS.get(model_name, [])
        if not entries:
            known = sorted(n for n, e in _WEIGHTS.items() if e)
            raise CheckpointError(
                f"no pretrained weights are registered for '{model_name}'. Models with weights: "
                f"{known or 'none yet'}. Pass pretrained='path/to/file.pdparams' to load a local "
                f"file, or convert the authors' checkpoint with tools/convert_weights.py.")
        path = download_weights(entries[0], cache_dir)
    elif isinstance(pretrained, str):
        path = pretrained
        if path.startswith(("http://", "https://", "file://")):
            raise CheckpointError("a URL without a checksum is not loaded; register a WeightEntry "
                                  "(url + sha256) or download it and pass the local path")
    else:
        raise TypeError(f"pretrained must be False, True or a path string, got {pretrained!r}")
    load_state_dict_checked(model, load_checkpoint_file(path))
    return model
