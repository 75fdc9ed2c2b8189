"""Train -> evaluate -> export -> compare, through the toolkits' own machinery, on the demo set.

Used by tests/test_dense.py (one family per architecture) and benchmarks/dense_all_families.py
(every family). Everything is written under ``workdir``."""
import os

import numpy as np

from .cli import load_det_config, fill_pfpn_inplanes
from .verify import compare_det_export, compare_seg_export, det_inputs

__all__ = ["run_det_pipeline", "run_seg_pipeline", "export_det_model", "export_seg_model"]


def run_det_pipeline(config, arch, det_root, workdir, epochs=1, compare_sizes=((128, 160), (160, 96))):
    """ppdet Trainer: train ``epochs`` on the demo set, COCO-evaluate, export, and check the
    exported model in paddle.inference against dygraph. ``compare_sizes`` are multiples of 32:
    ppdet's FPN needs that, and its reader / infer_cfg.yml pad to it (PadBatch / PadStride).
    Returns a summary dict."""
    import paddle
    from ppdet.engine import Trainer
    paddle.set_device("cpu")
    cfg = load_det_config(config, {"PVHBackbone": {"arch": arch, "pretrained": False},
                                   "epoch": epochs, "use_gpu": False,
                                   "save_dir": os.path.join(workdir, "train"),
                                   "output_eval": workdir, "log_iter": 1})
    for key in ("TrainDataset", "EvalDataset", "TestDataset"):
        cfg[key].dataset_dir = det_root
    trainer = Trainer(cfg, mode="train")
    # the Trainer resets its COCO metric right after logging it: keep the numbers first
    results, reset = {}, trainer._reset_metrics

    def keep_then_reset():
        for metric in trainer._metrics:
            results.update(metric.get_results())
        reset()

    trainer._reset_metrics = keep_then_reset
    trainer.train(validate=True)
    summary = {"arch": arch, "config": os.path.basename(config),
               "bbox_ap": float(results["bbox"][0]) if "bbox" in results else None,
               "mask_ap": float(results["mask"][0]) if "mask" in results else None}
    export_root = os.path.join(workdir, "inference")
    export_det_model(trainer, export_root)
    export_dir = os.path.join(export_root, os.path.splitext(os.path.basename(config))[0])
    summary["export_files"] = sorted(os.listdir(export_dir))
    summary["compare"] = [compare_det_export(trainer.model, export_dir, det_inputs(h, w, seed=i))
                          for i, (h, w) in enumerate(compare_sizes)]
    summary["trainer"] = trainer
    return summary


def export_det_model(trainer, output_dir):
    """ppdet's ``Trainer.export`` (which re-parameterizes our backbone through
    ``convert_to_deploy``) into a temporary folder swapped in as one set, each model folder read
    back first: ``output_dir/<config name>/`` is replaced whole or not at all."""
    from ..export import read_back
    from ..io_atomic import atomic_directory
    with atomic_directory(output_dir) as tmp:
        trainer.export(tmp)
        for name in os.listdir(tmp):
            if os.path.exists(os.path.join(tmp, name, "model.pdiparams")):
                read_back(os.path.join(tmp, name, "model"), output_dir)
    return output_dir


def export_seg_model(model, save_dir, transforms=None, output_op="none"):
    """``paddle.jit.to_static`` (full graph; dynamic batch, height, width) + ``jit.save`` to
    ``save_dir/model.{json,pdiparams}`` and PaddleSeg's deploy.yaml."""
    import paddle
    import yaml

    class Exported(paddle.nn.Layer):
        def __init__(self, net, op):
            super().__init__()
            self.net, self.op = net, op

        def forward(self, x):
            logit = self.net(x)[0]
            if self.op == "argmax":
                return paddle.argmax(logit, axis=1, dtype="int32")
            if self.op == "softmax":
                return paddle.nn.functional.softmax(logit, axis=1)
            return logit

    from ..export import deploy_copy
    wrapped = Exported(deploy_copy(model), output_op)  # our backbones in their inference form
    wrapped.eval()
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]
    static = paddle.jit.to_static(wrapped, input_spec=spec, full_graph=True)
    # model, params and deploy.yaml replace an earlier export as one set, and only once they load
    from ..export import read_back
    from ..io_atomic import atomic_directory
    with atomic_directory(save_dir, replaces=lambda entry: entry.startswith("model.")) as tmp:
        paddle.jit.save(static, os.path.join(tmp, "model"))
        read_back(os.path.join(tmp, "model"), save_dir)
        with open(os.path.join(tmp, "deploy.yaml"), "w") as f:
            yaml.safe_dump({"Deploy": {"model": "model.json", "params": "model.pdiparams",
                                       "transforms": transforms or [], "output_op": output_op}}, f)
    return save_dir


def run_seg_pipeline(config, arch, seg_root, workdir, iters=2, compare_sizes=((97, 131), (128, 128))):
    """PaddleSeg core.train -> core.evaluate (mIoU) -> export -> paddle.inference == dygraph."""
    import paddle
    from . import setup_seg
    setup_seg()
    from paddleseg import core
    from paddleseg.cvlibs import Config, SegBuilder
    paddle.set_device("cpu")
    opts = [f"model.backbone.arch={arch}", f"iters={iters}",
            f"train_dataset.dataset_root={seg_root}",
            f"train_dataset.train_path={os.path.join(seg_root, 'train.txt')}",
            f"val_dataset.dataset_root={seg_root}",
            f"val_dataset.val_path={os.path.join(seg_root, 'val.txt')}"]
    cfg = Config(config, opts=opts)
    fill_pfpn_inplanes(cfg.dic)
    builder = SegBuilder(cfg)
    model = builder.model
    core.train(model, builder.train_dataset, optimizer=builder.optimizer,
               save_dir=os.path.join(workdir, "train"), iters=iters, batch_size=cfg.batch_size,
               save_interval=iters, log_iters=1, losses=builder.loss)
    miou, acc, _, _, _ = core.evaluate(model, builder.val_dataset, print_detail=False)
    export_dir = export_seg_model(model, os.path.join(workdir, "inference"),
                                  cfg.dic["val_dataset"]["transforms"])
    rng = np.random.default_rng(0)
    compare = [compare_seg_export(model, export_dir,
                                  rng.standard_normal((1, 3, h, w)).astype("float32"))
               for h, w in compare_sizes]
    return {"arch": arch, "config": os.path.basename(config), "miou": float(miou),
            "acc": float(acc), "export_files": sorted(os.listdir(export_dir)), "compare": compare,
            "model": model}
