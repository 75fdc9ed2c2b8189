"""Run any PaddleClas tool with our models registered:

    python -m ppvision_hybrid.paddleclas <PaddleClas>/tools/train.py -c configs/demo/MixFormer_B0_digits.yaml [-o ...]
    python -m ppvision_hybrid.paddleclas <PaddleClas>/tools/eval.py  -c ... -o Global.pretrained_model=...
    python -m ppvision_hybrid.paddleclas <PaddleClas>/tools/export_model.py -c ... -o ...

Before handing over to the script (run as ``__main__`` with the remaining arguments, from the
current directory) this puts the PaddleClas checkout that holds the script first on
``sys.path``, registers every ppvision-hybrid factory into its ``ppcls.arch`` (so ``Arch.name:
MixFormer_B0`` resolves) and writes the digits demo folder when a ``DataLoader`` dataset of the
config points at one that does not exist yet. Scripts outside ``tools/`` (PaddleClas's
``deploy/python/predict_cls.py`` runs exported models and needs no registration) run unchanged.
Works the same for a pip-installed ``paddleclas`` wheel when the script is given by path.
"""
import os
import runpy
import sys

import yaml

from .cli_errors import UserError, main_guard

__all__ = ["main", "prepare_demo_data"]

USAGE = ("usage: python -m ppvision_hybrid.paddleclas <PaddleClas>/tools/<train|eval|infer|"
         "export_model>.py -c CONFIG [-o Section.key=value ...]")


def _config_argument(args):
    """The ``-c/--config`` value and the ``-o/--override`` values of a PaddleClas command line."""
    config, overrides, i = None, [], 0
    while i < len(args):
        arg = args[i]
        if arg in ("-c", "--config") and i + 1 < len(args):
            config, i = args[i + 1], i + 2
            continue
        if arg in ("-o", "--override"):
            i += 1
            while i < len(args) and not args[i].startswith("-"):
                overrides.append(args[i])
                i += 1
            continue
        if arg.startswith("--config="):
            config = arg.split("=", 1)[1]
        i += 1
    return config, overrides


def prepare_demo_data(args):
    """Materialise the digits folder for every ``DataLoader.*.dataset.image_root`` (after the
    ``-o`` overrides) named ``digits`` that is not complete yet; returns the roots handled."""
    from .data.dataset import ensure_demo_data
    config_path, overrides = _config_argument(args)
    if not config_path or not os.path.isfile(config_path):
        return []
    with open(config_path, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    roots = {mode: ((part or {}).get("dataset") or {}).get("image_root")
             for mode, part in (config.get("DataLoader") or {}).items() if isinstance(part, dict)}
    for item in overrides:
        key, _, value = item.partition("=")
        parts = key.split(".")
        if len(parts) == 4 and parts[0] == "DataLoader" and parts[2:] == ["dataset", "image_root"]:
            roots[parts[1]] = value
    done = []
    for root in roots.values():
        if root and os.path.basename(os.path.normpath(str(root))) == "digits":
            ensure_demo_data(root)
            done.append(root)
    return done


def _register(paddleclas_root):
    if paddleclas_root and os.path.isdir(os.path.join(paddleclas_root, "ppcls")):
        sys.path.insert(0, paddleclas_root)
    from .paddleclas_plugin import register_into_paddleclas
    return register_into_paddleclas()


@main_guard
def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    script, args = os.path.abspath(argv[0]), argv[1:]
    if not os.path.isfile(script):
        raise UserError(f"{argv[0]}: no such PaddleClas script. {USAGE}")
    tools_dir = os.path.dirname(script)
    if os.path.basename(tools_dir) == "tools":
        names = _register(os.path.dirname(tools_dir))
        print(f"[ppvision_hybrid] registered {len(names)} models into PaddleClas "
              f"({', '.join(names[:3])}, ...)")
        prepare_demo_data(args)
    sys.argv = [script] + args
    sys.path.insert(0, tools_dir)
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
