"""Evaluate (mIoU) with PaddleSeg's own core.evaluate
(a thin wrapper of :func:`ppvision_hybrid.cli.eval_seg`; installed as ``ppvh-eval-seg``, same flags).

    python tools/eval_seg.py --config configs/seg/demo/upernet_demo.yml \\
        --model_path output/seg/iter_4/model.pdparams
"""
import zlib  # noqa: F401  (before paddle: see ppvision_hybrid/paddle_compat.py)
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppvision_hybrid.cli import eval_seg as main  # noqa: E402  (one error line per failure)

if __name__ == "__main__":
    sys.exit(main())
