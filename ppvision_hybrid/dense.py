"""Run any PaddleDetection or PaddleSeg script with the ppvision_hybrid backbones registered.

    python -m ppvision_hybrid.dense <script.py> [the script's own arguments]
    python -m ppvision_hybrid.dense PaddleDetection/tools/train.py -c configs/det/demo/mask_rcnn_demo.yml
    python -m ppvision_hybrid.dense tools/train.py --config .../upernet_demo.yml   # in a PaddleSeg checkout
    python -m ppvision_hybrid.dense --check             # which ppdet / paddleseg, which fixes
    python -m ppvision_hybrid.dense --channels TransXNet_T   # PFPNNet's fpn_inplanes for a backbone

The script runs as ``python <script.py>`` would run it (as ``__main__``, with its arguments in
``sys.argv`` and its directory first on ``sys.path``); the current directory stays on
``sys.path`` behind it, as with any ``python -m``, so in a PaddleSeg checkout's root its own
``paddleseg`` is the one imported (PaddleDetection's tools put their checkout first
themselves). The moment the script imports ``ppdet`` or ``paddleseg`` — whichever copy that
is: a checkout, the PyPI wheel — the compat probes run on that code, the fixes it needs are
applied, and ``PVHBackbone`` is registered, so configs with ``backbone: PVHBackbone`` (ppdet)
or ``type: PVHBackbone`` (PaddleSeg) build. One line on stderr says which copy and which fixes.
"""
import importlib.abc
import os
import runpy
import sys

from .cli_errors import UserError, main_guard

__all__ = ["main", "register_on_import"]

USAGE = __doc__.split("\n\n")[1]


class _AfterExec(importlib.abc.Loader):
    """Delegates to the real loader, then calls ``after(module)`` once the module has run."""

    def __init__(self, loader, after):
        self._loader, self._after = loader, after

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._after(module)

    def __getattr__(self, name):  # get_data, get_resource_reader, is_package, ...
        return getattr(self._loader, name)


class _SetupOnImport(importlib.abc.MetaPathFinder):
    """Finds top-level ``ppdet`` / ``paddleseg`` with the other finders and wraps the loader."""

    def __init__(self, callbacks):
        self.callbacks = dict(callbacks)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.callbacks:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None:
            spec.loader = _AfterExec(spec.loader, self.callbacks.pop(fullname))
        return spec


def _announce(toolkit):
    from .adapters import describe
    print(f"[ppvision_hybrid] {describe(toolkit)}", file=sys.stderr, flush=True)


def _setup_det(module):
    from .adapters import setup_det
    setup_det()
    _announce("ppdet")


def _setup_seg(module):
    from .adapters import setup_seg
    setup_seg()
    _announce("paddleseg")


def register_on_import():
    """Set up each toolkit as soon as it is imported (now, for one imported already)."""
    callbacks = {}
    for name, setup in (("ppdet", _setup_det), ("paddleseg", _setup_seg)):
        if name in sys.modules:
            setup(sys.modules[name])
        else:
            callbacks[name] = setup
    if callbacks:
        sys.meta_path.insert(0, _SetupOnImport(callbacks))


def _check():
    """Import both toolkits as a script here would, set them up and report."""
    import importlib
    register_on_import()
    for name in ("ppdet", "paddleseg"):
        try:
            importlib.import_module(name)
        except ImportError as err:
            print(f"[ppvision_hybrid] {name}: cannot import ({err})", file=sys.stderr)
    return 0


def _channels(arch):
    import paddle
    from .registry import create_model
    with paddle.LazyGuard():
        model = create_model(arch, features_only=True)
    print(list(model.out_channels))
    return 0


@main_guard
def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    from .compat import ProbeUndecided
    try:
        if argv[0] == "--check":
            return _check()
        if argv[0] == "--channels" and len(argv) == 2:
            return _channels(argv[1])
        script = argv[0]
        if not os.path.isfile(script):
            raise UserError(f"ppvision_hybrid.dense: no script {script!r} (give the path of a "
                            f"PaddleDetection / PaddleSeg script, e.g. PaddleDetection/tools/train.py)")
        sys.argv = [script] + argv[1:]
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        register_on_import()
        runpy.run_path(script, run_name="__main__")
    except ProbeUndecided as err:  # one line, as the message names the probe and the way out
        print(f"ppvision_hybrid.dense: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
