"""Train a PaddleSeg model with a ppvision_hybrid backbone (PaddleSeg's own core.train).

    python tools/train_seg.py --config configs/seg/demo/upernet_demo.yml --do_eval \
        --opts model.backbone.arch=TransXNet_T iters=4
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppvision_hybrid.cli_errors import main_guard  # noqa: E402
from ppvision_hybrid.adapters.cli import seg_session  # noqa: E402


@main_guard
def main(argv=None):
    cfg, builder, args = seg_session(argv, __doc__, [
        (("--save_dir",), dict(default="output/seg")),
        (("--save_interval",), dict(type=int, default=1000)),
        (("--log_iters",), dict(type=int, default=10)),
        (("--resume_model",), dict(default=None)),
        (("--num_workers",), dict(type=int, default=0)),
        (("--keep_checkpoint_max",), dict(type=int, default=5)),
        (("--do_eval",), dict(action="store_true"))])
    from paddleseg import core
    model = builder.model
    core.train(model, builder.train_dataset,
               val_dataset=builder.val_dataset if args.do_eval else None,
               optimizer=builder.optimizer, save_dir=args.save_dir, iters=cfg.iters,
               batch_size=cfg.batch_size, resume_model=args.resume_model,
               save_interval=args.save_interval, log_iters=args.log_iters,
               num_workers=args.num_workers, losses=builder.loss,
               keep_checkpoint_max=args.keep_checkpoint_max, test_config=cfg.test_config)
    return model


if __name__ == "__main__":
    main()
