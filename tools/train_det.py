"""Train a PaddleDetection model with a ppvision_hybrid backbone (ppdet's own Trainer)
(a thin wrapper of :func:`ppvision_hybrid.cli.train_det`; installed as ``ppvh-train-det``, same flags).

    python tools/train_det.py -c configs/det/demo/mask_rcnn_demo.yml --eval \\
        -o PVHBackbone.arch=TransXNet_T epoch=1
"""
import zlib  # noqa: F401  (before paddle: see ppvision_hybrid/paddle_compat.py)
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppvision_hybrid.cli import train_det as main  # noqa: E402  (one error line per failure)

if __name__ == "__main__":
    sys.exit(main())
