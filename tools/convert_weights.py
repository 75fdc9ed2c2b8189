"""Convert an authors' checkpoint into a verified ppvision_hybrid ``.pdparams`` file (a thin wrapper:
the logic is :mod:`ppvision_hybrid.convert`; installed as ``ppvh-convert-weights``, same flags).

    python tools/convert_weights.py --model TransXNet_T --src transx-t.pth.tar --dst TransXNet_T.pdparams
    python tools/convert_weights.py --model MixFormer_B4 --src MixFormer_B4.pdparams --dst MixFormer_B4.pdparams

Exit status 0 on success, 1 with a one-paragraph message otherwise.
"""
import zlib  # noqa: F401  (before paddle: see ppvision_hybrid/paddle_compat.py)
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppvision_hybrid.cli import convert_weights as main  # noqa: E402  (one error line per failure)

if __name__ == "__main__":
    sys.exit(main())
