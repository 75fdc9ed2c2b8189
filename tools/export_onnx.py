"""Convert an exported Paddle inference model to ONNX and prove the file's numbers
(a thin wrapper: the logic is :mod:`ppvision_hybrid.onnx`; installed as ``ppvh-export-onnx``).

    python tools/export_onnx.py --model_dir output/TransXNet_T --save_file TransXNet_T.onnx
    python tools/export_onnx.py --model TransXNet_T --save_file TransXNet_T.onnx   # export first
"""
import zlib  # noqa: F401  (before paddle: see ppvision_hybrid/paddle_compat.py)
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppvision_hybrid.cli import export_onnx as main  # noqa: E402  (one error line per failure)

if __name__ == "__main__":
    sys.exit(main())
