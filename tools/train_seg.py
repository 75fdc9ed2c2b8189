"""Train a PaddleSeg model with a ppvision_hybrid backbone (PaddleSeg's own core.train)
(a thin wrapper of :func:`ppvision_hybrid.cli.train_seg`; installed as ``ppvh-train-seg``, same flags).

    python tools/train_seg.py --config configs/seg/demo/upernet_demo.yml --do_eval \\
        --opts model.backbone.arch=TransXNet_T iters=4
"""
import zlib  # noqa: F401  (before paddle: see ppvision_hybrid/paddle_compat.py)
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppvision_hybrid.cli import train_seg as main  # noqa: E402  (one error line per failure)

if __name__ == "__main__":
    sys.exit(main())
