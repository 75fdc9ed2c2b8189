"""Export a Paddle Inference model (dynamic batch) from a PaddleClas config or a model name
(a thin wrapper of :func:`ppvision_hybrid.cli.export_model`; installed as ``ppvh-export``, same flags).

    python tools/export_model.py -c CONFIG [-o Global.pretrained_model=...]
    python tools/export_model.py --model MixFormer_B0 [--class-num 1000] [--image-shape 3 224 224] [--output DIR]
"""
import zlib  # noqa: F401  (before paddle: see ppvision_hybrid/paddle_compat.py)
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppvision_hybrid.cli import export_model as main  # noqa: E402  (one error line per failure)

if __name__ == "__main__":
    sys.exit(main())
