"""Evaluate (COCO bbox / segm AP through pycocotools) with ppdet's own Trainer.

    python tools/eval_det.py -c configs/det/demo/mask_rcnn_demo.yml -o weights=output/demo_det/model_final
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppvision_hybrid.cli_errors import main_guard  # noqa: E402
from ppvision_hybrid.adapters.cli import det_session  # noqa: E402


@main_guard
def main(argv=None):
    cfg, _ = det_session(argv, "eval")
    from ppdet.engine import Trainer
    trainer = Trainer(cfg, mode="eval")
    trainer.load_weights(cfg.weights)
    trainer.evaluate()
    return trainer


if __name__ == "__main__":
    main()
