"""Rank-aware logging: rank 0 writes INFO to stdout and ``<output_dir>/<Arch.name>/<mode>.log``;
other ranks report warnings and errors only, unless ``Global.log_ranks`` lists them (so a
distributed launch prints each line once by default)."""
import logging
import os
import sys
import warnings

import yaml

__all__ = ["get_logger", "VisualDLWriter", "format_config", "log_config"]


def get_logger(name="ppvision_hybrid", log_file=None, rank=0, info=None):
    """``info``: whether this rank logs INFO (default: rank 0 only)."""
    logger = logging.getLogger(f"{name}.rank{rank}")
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    fmt = logging.Formatter("[%(asctime)s] %(levelname)s %(message)s", "%Y/%m/%d %H:%M:%S")
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(fmt)
    logger.addHandler(stream)
    if rank == 0 and log_file:
        os.makedirs(os.path.dirname(log_file) or ".", exist_ok=True)
        fh = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    logger.setLevel(logging.INFO if (rank == 0 if info is None else info) else logging.WARNING)
    return logger


class _ConfigDumper(yaml.SafeDumper):
    """Block style, except lists of plain values (``mean: [0.5, 0.5, 0.5]``) on one line."""


def _represent_list(dumper, data):
    flat = all(not isinstance(v, (dict, list, tuple)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_ConfigDumper.add_representer(list, _represent_list)
_ConfigDumper.add_representer(tuple, _represent_list)


def format_config(config):
    """The config as indented YAML, one key per line, in the order the file gives them."""
    try:
        text = yaml.dump(config, Dumper=_ConfigDumper, sort_keys=False, default_flow_style=False,
                         width=100, allow_unicode=True)
    except yaml.YAMLError:  # a value YAML cannot write: fall back to Python's form
        return repr(config)
    return text.rstrip("\n")


def log_config(logger, config):
    """Log the effective config (after ``-o`` overrides) readably: a header line, then the YAML
    indented under it."""
    body = "\n".join("    " + line for line in format_config(config).splitlines())
    logger.info(f"effective config (after -o overrides):\n{body}")


class VisualDLWriter:
    """Scalars to VisualDL when it is installed and ``Global.use_visualdl`` is on; otherwise a
    no-op (with one warning when it was asked for but is missing)."""

    def __init__(self, enabled, logdir, logger=None):
        self.writer = None
        if not enabled:
            return
        try:
            from visualdl import LogWriter
        except ImportError:
            msg = "Global.use_visualdl is True but visualdl is not installed (pip install visualdl); not logging to VisualDL"
            (logger.warning if logger else warnings.warn)(msg)
            return
        os.makedirs(logdir, exist_ok=True)
        self.writer = LogWriter(logdir=logdir)

    def add_scalar(self, tag, value, step):
        if self.writer is not None:
            self.writer.add_scalar(tag=tag, value=float(value), step=int(step))

    def close(self):
        if self.writer is not None:
            self.writer.close()
