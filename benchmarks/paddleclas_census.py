"""Census of PaddleClas's ImageNet configs against this engine's schema:

    python benchmarks/paddleclas_census.py /path/to/PaddleClas [--model MixFormer_B0] [--markdown FILE]

Every ``ppcls/configs/ImageNet/**/*.yaml`` gets ``Arch`` replaced by one of our models (the
model-independent keys ``use_sync_bn``, ``data_format``, ``use_fused_attn`` and
``use_fused_linear`` are kept, ResNet's ``input_image_channel`` becomes our ``in_chans``; a
``DistillationModel`` keeps its layout with our model as every member) and is then

1. validated (``ppvision_hybrid.engine.validate_config``), and
2. built without data: every transform list, batch op, loss, metric, and the optimizer with its
   LR schedule on a small model;
3. with ``--train-step``, trained for one batch of 2 by the engine itself (``Engine(config,
   "train").train()`` with ``Global.epochs=1, iter_per_epoch=1``), its training data pointed
   at the digits folder (``--data``, written on first use) and everything else as configured.

A config is accepted when all of them pass; otherwise the first error is its reason. Prints the
counts, the reasons with how many configs each, and a JSON line; ``--markdown`` writes the
per-config table. Exit status 0 (a census, not a gate).
"""
import argparse
import collections
import copy
import glob
import json
import os
import re
import sys
import warnings

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

GENERIC_ARCH = ("use_sync_bn", "data_format", "use_fused_attn", "use_fused_linear")


def with_our_model(cfg, model):
    """The config with Arch naming ``model`` (members too, for a DistillationModel)."""
    cfg = copy.deepcopy(cfg)
    arch = cfg.get("Arch") or {}
    if arch.get("name") == "DistillationModel":
        members = []
        for item in arch.get("models") or []:
            (member, spec), = item.items()
            members.append({member: {"name": model, "class_num": (spec or {}).get("class_num", 1000)}})
        new = {k: arch[k] for k in ("class_num", "freeze_params_list", "infer_model_name") if k in arch}
        new.update(name="DistillationModel", models=members)
    else:
        new = {"name": model, "class_num": arch.get("class_num", 1000)}
        if "input_image_channel" in arch:  # PaddleClas's ResNet keyword for our in_chans
            new["in_chans"] = arch["input_image_channel"]
    new.update({k: arch[k] for k in GENERIC_ARCH if k in arch})
    cfg["Arch"] = new
    return cfg


def build_components(cfg):
    """Build everything a training run builds before it touches data or the full model."""
    import paddle
    from ppvision_hybrid.data import build_batch_ops, build_transforms
    from ppvision_hybrid.losses import build_loss
    from ppvision_hybrid.metrics import build_metrics
    from ppvision_hybrid.optim import build_optimizer
    class_num = int(cfg["Arch"].get("class_num", 1000))
    for part in (cfg.get("DataLoader") or {}).values():
        build_transforms(part["dataset"].get("transform_ops"))
        build_batch_ops(part["dataset"].get("batch_transform_ops"), class_num)
    build_transforms((cfg.get("Infer") or {}).get("transforms"))
    for mode in ("Train", "Eval"):
        build_loss((cfg.get("Loss") or {}).get(mode))
        build_metrics((cfg.get("Metric") or {}).get(mode))
    model = paddle.nn.Sequential(paddle.nn.Conv2D(3, 8, 3), paddle.nn.BatchNorm2D(8), paddle.nn.Flatten(),
                                 paddle.nn.Linear(8, class_num))
    epochs = int((cfg.get("Global") or {}).get("epochs", 1) or 1)
    build_optimizer(cfg["Optimizer"], model, epochs, 10)


def train_one_step(cfg, data_root, workdir):
    """One training batch of 2 through the engine, on the digits folder."""
    from ppvision_hybrid.engine import Engine
    cfg = copy.deepcopy(cfg)
    cfg["Global"].update(epochs=1, iter_per_epoch=1, eval_during_train=False, output_dir=workdir, overwrite=True,
                         device="cpu", checkpoints=None, pretrained_model=None, print_batch_step=1,
                         use_visualdl=False)
    train = cfg["DataLoader"]["Train"]
    train["dataset"].update(image_root=data_root, cls_label_path=os.path.join(data_root, "val_list.txt"))
    sampler = train.setdefault("sampler", {})
    sampler["first_bs" if sampler.get("name") == "MultiScaleSampler" else "batch_size"] = 2
    train["loader"] = {"num_workers": 0, "use_shared_memory": False}
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):  # the engine's progress lines
        Engine(cfg, mode="train").train()


def judge(path, model, data_root=None, workdir=None):
    from ppvision_hybrid.engine.config import ConfigError, load_config, validate_config
    cfg = with_our_model(load_config(path), model)
    try:
        validate_config(cfg)
    except ConfigError as e:
        return False, str(e)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build_components(cfg)
            if data_root:
                train_one_step(cfg, data_root, workdir)
    except Exception as e:  # a build or training error is a refusal with its message
        return False, f"{type(e).__name__}: {e}"
    return True, ""


def reason_key(message):
    """Group refusals: the message up to its list of accepted keys, numbers normalised."""
    text = message.split(" Accepted")[0].split(" (accepted")[0]
    return re.sub(r"\[\d+\]", "[i]", text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paddleclas", help="root of a PaddleClas checkout")
    parser.add_argument("--model", default="MixFormer_B0", help="our model put in Arch")
    parser.add_argument("--markdown", help="write the per-config table to this file")
    parser.add_argument("--train-step", action="store_true", help="also train one batch per config")
    parser.add_argument("--data", default="./dataset/digits", help="digits folder for --train-step")
    parser.add_argument("--only", nargs="*", help="config paths relative to ppcls/configs/ImageNet")
    args = parser.parse_args(argv)
    workdir = None
    if args.train_step:
        import tempfile
        from ppvision_hybrid.data.dataset import ensure_demo_data
        ensure_demo_data(args.data)
        workdir = tempfile.mkdtemp(prefix="ppvh_census_")
    paths = sorted(glob.glob(os.path.join(args.paddleclas, "ppcls", "configs", "ImageNet", "**", "*.yaml"),
                             recursive=True))
    if args.only:
        base = os.path.join(args.paddleclas, "ppcls", "configs", "ImageNet")
        paths = [p for p in paths if os.path.relpath(p, base) in args.only]
    if not paths:
        raise SystemExit(f"no ppcls/configs/ImageNet/**/*.yaml under {args.paddleclas}")
    rows, reasons = [], collections.Counter()
    for path in paths:
        ok, message = judge(path, args.model, args.data if args.train_step else None, workdir)
        if args.train_step:
            print(f"{'ok ' if ok else 'NO '} {os.path.relpath(path, args.paddleclas)} {message[:160]}", flush=True)
        rel = os.path.relpath(path, os.path.join(args.paddleclas, "ppcls", "configs", "ImageNet"))
        rows.append((rel, ok, message))
        if not ok:
            reasons[reason_key(message)] += 1
    accepted = sum(ok for _, ok, _ in rows)
    print(f"PaddleClas ImageNet configs: {len(rows)}; accepted {accepted}; refused {len(rows) - accepted}")
    for reason, count in reasons.most_common():
        print(f"  {count:4d}  {reason}")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write("| config | accepted | reason |\n|---|---|---|\n")
            for rel, ok, message in rows:
                f.write(f"| {rel} | {'yes' if ok else 'no'} | {reason_key(message) if message else ''} |\n")
    print(json.dumps({"benchmark": "paddleclas_census", "train_step": args.train_step,
                      "configs": len(rows), "accepted": accepted,
                      "refused": len(rows) - accepted, "reasons": dict(reasons.most_common())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
