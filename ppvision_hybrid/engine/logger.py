"""Rank-aware logging: rank 0 writes INFO to stdout and ``<output_dir>/<Arch.name>/<mode>.log``;
other ranks report warnings and errors only, unless ``Global.log_ranks`` lists them (so a
distributed launch prints each line once by default)."""
import logging
import os
import sys
import warnings

__all__ = ["get_logger", "VisualDLWriter"]


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
