"""Train a PaddleDetection model with a ppvision_hybrid backbone (ppdet's own Trainer).

    python tools/train_det.py -c configs/det/demo/mask_rcnn_demo.yml --eval \
        -o PVHBackbone.arch=TransXNet_T epoch=1
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppvision_hybrid.cli_errors import main_guard  # noqa: E402
from ppvision_hybrid.adapters.cli import det_session  # noqa: E402


@main_guard
def main(argv=None):
    cfg, args = det_session(argv, "train", [
        (("--eval",), dict(action="store_true", help="evaluate after every snapshot epoch")),
        (("-r", "--resume"), dict(default=None, help="checkpoint to resume from"))])
    from ppdet.engine import Trainer
    trainer = Trainer(cfg, mode="train")
    if args.resume:
        trainer.resume_weights(args.resume)
    elif cfg.get("pretrain_weights"):
        trainer.load_weights(cfg.pretrain_weights)
    trainer.train(args.eval)
    return trainer


if __name__ == "__main__":
    main()
