"""Shared plumbing of tools/{train,eval,export}_{det,seg}.py: compat + registration, device
choice, and the toolkits' usual command-line overrides (ppdet ``-c/-o``, paddleseg
``--config/--opts``)."""
import argparse
import os
import sys

__all__ = ["det_session", "seg_session", "fill_pfpn_inplanes", "build_seg_model", "load_det_config",
           "build_det_model"]

_PRISTINE_DET_CONFIG = None


def _choose_device(want_gpu):
    import paddle
    if want_gpu and not paddle.is_compiled_with_cuda():
        print("[ppvision_hybrid] use_gpu requested but Paddle has no CUDA: running on CPU")
        want_gpu = False
    paddle.set_device("gpu" if want_gpu else "cpu")
    return want_gpu


def load_det_config(path, opts=None):
    """``ppdet.core.workspace.load_config`` on a clean slate.

    ppdet merges every loaded YAML into one process-wide ``global_config``, so a second config
    would inherit keys of the first (e.g. RetinaNet's FPN scales in a Mask R-CNN). We restore
    the registry state captured right after registration before each load."""
    import copy
    from . import setup_det
    setup_det()
    from ppdet.core import workspace
    global _PRISTINE_DET_CONFIG
    if _PRISTINE_DET_CONFIG is None:
        # shallow copies suffice: merging replaces entries of the per-class SchemaDicts
        _PRISTINE_DET_CONFIG = {k: copy.copy(v) for k, v in workspace.global_config.items()}
    workspace.global_config.clear()
    workspace.global_config.update({k: copy.copy(v) for k, v in _PRISTINE_DET_CONFIG.items()})
    cfg = workspace.load_config(path)
    if opts:
        workspace.merge_config(opts)
    return cfg


def build_det_model(path, opts=None):
    """Config -> architecture through ppdet's own loader and ``create``."""
    from ppdet.core.workspace import create
    cfg = load_det_config(path, opts)
    return create(cfg.architecture), cfg


def det_session(argv, mode, extra_args=()):
    """Parse ppdet-style arguments, apply fixes, register PVHBackbone and return (cfg, args).

    ``extra_args``: (flags, kwargs) pairs added to the parser (e.g. ``--eval``)."""
    from . import describe, setup_det
    setup_det()
    print(f"[ppvision_hybrid] {describe('ppdet')}", file=sys.stderr)
    from ppdet.utils.cli import ArgsParser
    parser = ArgsParser()
    for flags, kwargs in extra_args:
        parser.add_argument(*flags, **kwargs)
    args = parser.parse_args(argv)
    cfg = load_det_config(args.config, args.opt)
    cfg["use_gpu"] = _choose_device(cfg.get("use_gpu", False))
    for key in ("use_xpu", "use_mlu", "use_npu"):
        cfg.setdefault(key, False)
    return cfg, args


def fill_pfpn_inplanes(dic):
    """PaddleSeg's PFPNNet needs ``fpn_inplanes`` = the backbone's channels: fill them in from
    the PVHBackbone arch so ``--opts model.backbone.arch=...`` just works."""
    model = dic.get("model", {})
    backbone = model.get("backbone", {})
    if model.get("type") == "PFPNNet" and backbone.get("type") == "PVHBackbone":
        import paddle
        from ..registry import create_model
        with paddle.LazyGuard():
            net = create_model(backbone.get("arch", "TransXNet_T"), features_only=True,
                               out_indices=backbone.get("out_indices", (0, 1, 2, 3)))
        model["fpn_inplanes"] = list(net.out_channels)
    return dic


def seg_session(argv, description, extra_args=()):
    """Parse paddleseg-style arguments (``--config``, ``--opts k=v ...``), apply fixes, register
    PVHBackbone, and return (Config, SegBuilder, args)."""
    from . import describe, setup_seg
    setup_seg()
    print(f"[ppvision_hybrid] {describe('paddleseg')}", file=sys.stderr)
    from paddleseg.cvlibs import Config, SegBuilder
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True)
    parser.add_argument("--opts", nargs="+", default=None, help="key=value overrides")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    for flags, kwargs in extra_args:
        parser.add_argument(*flags, **kwargs)
    args = parser.parse_args(argv)
    _choose_device(args.device == "gpu")
    cfg = Config(args.config, opts=args.opts)
    fill_pfpn_inplanes(cfg.dic)
    return cfg, SegBuilder(cfg), args


def build_seg_model(config_path, opts=None):
    """Config -> model through PaddleSeg's own loader and builder (used by tests and tools)."""
    from . import setup_seg
    setup_seg()
    from paddleseg.cvlibs import Config, SegBuilder
    cfg = Config(config_path, opts=opts)
    fill_pfpn_inplanes(cfg.dic)
    return SegBuilder(cfg).model


def repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


if repo_root() not in sys.path:  # tools/ run from anywhere
    sys.path.insert(0, repo_root())
