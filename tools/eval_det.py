"""Evaluate (COCO bbox / segm AP through pycocotools) with ppdet's own Trainer
(a thin wrapper of :func:`ppvision_hybrid.cli.eval_det`; installed as ``ppvh-eval-det``, same flags).

    python tools/eval_det.py -c configs/det/demo/mask_rcnn_demo.yml -o weights=output/demo_det/model_final
"""
import zlib  # noqa: F401  (before paddle: see ppvision_hybrid/paddle_compat.py)
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppvision_hybrid.cli import eval_det as main  # noqa: E402  (one error line per failure)

if __name__ == "__main__":
    sys.exit(main())
