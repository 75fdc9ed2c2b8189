"""Print trainable parameters and multiply-accumulates (attention matmuls included) of registered
models as a markdown table, next to the reference numbers each model registers (a thin wrapper
over :func:`ppvision_hybrid.flops.main`; installed as ``ppvh-model-info``).

    python tools/model_info.py MixFormer_B0 MixFormer_B4
    python tools/model_info.py 'MixFormer*' --input-size 3 384 384
    python tools/model_info.py --all
"""
import zlib  # noqa: F401  (before paddle: see ppvision_hybrid/paddle_compat.py)
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppvision_hybrid.cli import model_info as main  # noqa: E402  (one error line per failure)

if __name__ == "__main__":
    sys.exit(main())
