"""Console scripts (``[project.scripts]`` in pyproject.toml): the PaddleClas-style engine
commands. Each tools/*.py file is the same command for a checkout without installing."""
from .engine.cli import run

__all__ = ["train", "evaluate", "infer"]


def train(argv=None):
    """``ppvh-train -c CONFIG [-o Section.key=value ...]`` (= python tools/train.py)."""
    run("train", argv, description=train.__doc__)
    return 0


def evaluate(argv=None):
    """``ppvh-eval -c CONFIG [-o Section.key=value ...]`` (= python tools/eval.py)."""
    run("eval", argv, description=evaluate.__doc__)
    return 0


def infer(argv=None):
    """``ppvh-infer -c CONFIG [-o Section.key=value ...]`` (= python tools/infer.py)."""
    run("infer", argv, description=infer.__doc__)
    return 0
