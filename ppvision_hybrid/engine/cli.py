"""The shared body of tools/train.py, eval.py and infer.py: ``-c CONFIG`` plus repeatable
``-o Section.key=value`` overrides (PaddleClas semantics), then one Engine mode."""
import argparse

from .config import get_config
from .engine import Engine


def run(mode, argv=None, description=None):
    """Parse the PaddleClas-style command line and run ``Engine(config, mode).<mode>()``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("-c", "--config", required=True, help="YAML config (PaddleClas schema)")
    parser.add_argument("-o", "--override", action="append", default=[],
                        help="Section.key=value, repeatable (e.g. -o Global.epochs=2)")
    args = parser.parse_args(argv)
    config = get_config(args.config, args.override)
    return getattr(Engine(config, mode=mode), mode)()
