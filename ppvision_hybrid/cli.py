"""Console scripts (``[project.scripts]`` in pyproject.toml). Each tools/*.py file is the same
command for a checkout without installing. Every command reports expected errors as one
``error:`` line with an exit status (:func:`.cli_errors.main_guard`; ``--debug`` for the traceback)."""
from .cli_errors import main_guard
from .engine.cli import run

__all__ = ["train", "evaluate", "infer", "model_info", "export_onnx"]


def _engine_command(mode, name, doc):
    """A guarded ``main(argv)`` running ``Engine(config, mode)`` from a PaddleClas-style command line."""
    def command(argv=None):
        run(mode, argv, description=doc)
        return 0
    command.__name__ = command.__qualname__ = name
    command.__doc__ = doc
    return main_guard(command)


train = _engine_command("train", "train",
                        "``ppvh-train -c CONFIG [-o Section.key=value ...]`` (= python tools/train.py).")
evaluate = _engine_command("eval", "evaluate",
                           "``ppvh-eval -c CONFIG [-o Section.key=value ...]`` (= python tools/eval.py).")
infer = _engine_command("infer", "infer",
                        "``ppvh-infer -c CONFIG [-o Section.key=value ...]`` (= python tools/infer.py).")


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
