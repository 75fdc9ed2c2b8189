"""Export a PaddleSeg model for Paddle Inference (model.json/.pdiparams + deploy.yaml)
(a thin wrapper of :func:`ppvision_hybrid.cli.export_seg`; installed as ``ppvh-export-seg``, same flags).

    python tools/export_seg.py --config configs/seg/demo/upernet_demo.yml \\
        --model_path output/seg/iter_4/model.pdparams --save_dir output/seg_inference
"""
import zlib  # noqa: F401  (before paddle: see ppvision_hybrid/paddle_compat.py)
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppvision_hybrid.cli import export_seg as main  # noqa: E402  (one error line per failure)

if __name__ == "__main__":
    sys.exit(main())
