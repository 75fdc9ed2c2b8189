"""Export for Paddle Inference (model.json/.pdiparams + infer_cfg.yml) with ppdet's Trainer
(a thin wrapper of :func:`ppvision_hybrid.cli.export_det`; installed as ``ppvh-export-det``, same flags).

    python tools/export_det.py -c configs/det/demo/mask_rcnn_demo.yml \\
        --output_dir output/inference -o weights=output/demo_det/model_final
"""
import zlib  # noqa: F401  (before paddle: see ppvision_hybrid/paddle_compat.py)
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppvision_hybrid.cli import export_det as main  # noqa: E402  (one error line per failure)

if __name__ == "__main__":
    sys.exit(main())
