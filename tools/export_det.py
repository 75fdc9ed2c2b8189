"""Export for Paddle Inference (model.json/.pdiparams + infer_cfg.yml) with ppdet's Trainer.

    python tools/export_det.py -c configs/det/demo/mask_rcnn_demo.yml \
        --output_dir output/inference -o weights=output/demo_det/model_final
Inputs: image [N,3,H,W] (dynamic H, W), im_shape [N,2], scale_factor [N,2].
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppvision_hybrid.cli_errors import main_guard  # noqa: E402
from ppvision_hybrid.adapters.cli import det_session  # noqa: E402


@main_guard
def main(argv=None):
    cfg, args = det_session(argv, "test", [
        (("--output_dir",), dict(default="output_inference", help="export directory"))])
    from ppdet.engine import Trainer
    from ppvision_hybrid.adapters.pipeline import export_det_model
    trainer = Trainer(cfg, mode="test")
    trainer.load_weights(cfg.weights)
    export_det_model(trainer, args.output_dir)  # written as one set, the old export kept on failure
    return trainer


if __name__ == "__main__":
    main()
