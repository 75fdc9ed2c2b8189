"""PaddleClas-style entry point: python tools/eval.py -c CONFIG [-o Section.key=value ...]"""
# Paddle 2.6.x (PyPI's paddlepaddle-gpu 2.6.2): Python's zlib must be loaded before paddle,
# or any later zlib/PNG compression crashes with SIGSEGV. A no-op on Paddle 3.x.
import zlib  # noqa: F401,I001
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
from ppvision_hybrid.cli import evaluate as main  # noqa: E402  (one error line per failure)

if __name__ == "__main__":
    sys.exit(main())
