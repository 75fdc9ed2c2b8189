"""Console scripts (``[project.scripts]`` in pyproject.toml). Each tools/*.py file is the same
command for a checkout without installing. Every command reports expected errors as one
``error:`` line with an exit status (:func:`.cli_errors.main_guard`; ``--debug`` for the traceback)."""
from .cli_errors import main_guard
from .engine.cli import run

__all__ = ["train", "evaluate", "infer", "model_info", "export_onnx"]


@main_guard
def train(argv=None):
    """``ppvh-train -c CONFIG [-o Section.key=value ...]`` (= python tools/train.py)."""
    run("train", argv, description=train.__doc__)
    return 0


@main_guard
def evaluate(argv=None):
    """``ppvh-eval -c CONFIG [-o Section.key=value ...]`` (= python tools/eval.py)."""
    run("eval", argv, description=evaluate.__doc__)
    return 0


@main_guard
def infer(argv=None):
    """``ppvh-infer -c CONFIG [-o Section.key=value ...]`` (= python tools/infer.py)."""
    run("infer", argv, description=infer.__doc__)
    return 0


@main_guard
def model_info(argv=None):
    """``ppvh-model-info NAME ...`` (= python tools/model_info.py)."""
    from .flops import main
    return main(argv)


@main_guard
def export_onnx(argv=None):
    """``ppvh-export-onnx ...`` (= python tools/export_onnx.py)."""
    from .onnx import main
    return main(argv)
