"""Check that an exported det/seg model in ``paddle.inference`` equals the dygraph model.

Used by tests/test_dense.py and the benchmarks; as a command, it checks an export written by a
toolkit's own tools against the dygraph model built by whichever ppdet / paddleseg is importable:

    python -m ppvision_hybrid.adapters.verify det -c CONFIG --weights W --export_dir DIR [-o k=v ...]
    python -m ppvision_hybrid.adapters.verify seg -c CONFIG --weights W --export_dir DIR [-o k=v ...]

It prints one JSON line (``RESULT {...}``) and exits 1 on a mismatch."""
import os

import numpy as np

from ..inference import restore_eager_threads

__all__ = ["run_predictor", "det_inputs", "compare_det_export", "compare_seg_export"]


def run_predictor(model_dir, feeds, prefix="model"):
    """Run ``<model_dir>/<prefix>.json`` on CPU without oneDNN (Paddle 3.3.1's oneDNN passes
    reject the ``interpolate`` attributes of these graphs). ``feeds``: name -> array."""
    import paddle.inference as pdi
    cfg = pdi.Config(os.path.join(model_dir, prefix + ".json"),
                     os.path.join(model_dir, prefix + ".pdiparams"))
    cfg.disable_gpu()
    cfg.disable_mkldnn()
    cfg.set_cpu_math_library_num_threads(1)
    cfg.disable_glog_info()
    predictor = pdi.create_predictor(cfg)
    names = predictor.get_input_names()
    if len(names) == 1 and len(feeds) == 1:  # a one-input graph: whatever its input is named
        feeds = {names[0]: next(iter(feeds.values()))}
    for name in names:
        predictor.get_input_handle(name).copy_from_cpu(np.ascontiguousarray(feeds[name]))
    predictor.run()
    restore_eager_threads()
    return [predictor.get_output_handle(n).copy_to_cpu() for n in predictor.get_output_names()]


def det_inputs(height, width, seed=0):
    """A normalised random image batch of one with ppdet's im_shape / scale_factor inputs."""
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((1, 3, height, width)).astype("float32")
    return {"image": image, "im_shape": np.array([[height, width]], "float32"),
            "scale_factor": np.ones((1, 2), "float32")}


def _split_det_outputs(outputs):
    """Identify bbox [N,6], bbox_num [B] and mask [N,H,W] among the predictor outputs."""
    got = {}
    for out in outputs:
        if out.ndim == 2 and out.shape[1] == 6:
            got["bbox"] = out
        elif out.ndim == 1:
            got["bbox_num"] = out
        elif out.ndim == 3:
            got["mask"] = out
    return got


def compare_det_export(model, export_dir, feeds, atol=1e-3):
    """Dygraph ``model`` (eval mode, weights loaded) vs the exported one on ``feeds``.

    Returns a dict of max abs differences; raises AssertionError on a mismatch."""
    import paddle
    model.eval()
    with paddle.no_grad():
        ref = model({k: paddle.to_tensor(v) for k, v in feeds.items()})
    ref = {k: v.numpy() for k, v in ref.items() if k in ("bbox", "bbox_num", "mask")}
    got = _split_det_outputs(run_predictor(export_dir, feeds))
    report = {}
    np.testing.assert_array_equal(got["bbox_num"], ref["bbox_num"])
    np.testing.assert_allclose(got["bbox"], ref["bbox"], atol=atol, rtol=1e-3)
    report["bbox_num"] = int(ref["bbox_num"].sum())
    report["bbox_max_abs_diff"] = float(np.abs(got["bbox"] - ref["bbox"]).max()) if ref["bbox"].size else 0.0
    if "mask" in ref:
        differing = float((got["mask"] != ref["mask"]).mean()) if ref["mask"].size else 0.0
        # binarised masks: a pixel can flip where a probability sits at the threshold
        assert differing < 1e-3, f"{differing:.2%} of mask pixels differ"
        report["mask_pixels_differing"] = differing
    return report


def compare_seg_export(model, export_dir, image, atol=1e-4):
    """Dygraph segmentation ``model`` vs the exported logits on ``image`` [N,3,H,W]."""
    import paddle
    model.eval()
    with paddle.no_grad():
        ref = model(paddle.to_tensor(image))[0].numpy()
    got = run_predictor(export_dir, {"x": image})[0]
    assert got.shape == ref.shape, (got.shape, ref.shape)
    diff = float(np.abs(got - ref).max())
    assert diff <= atol * max(1.0, float(np.abs(ref).max())), f"max abs diff {diff}"
    return {"logits_max_abs_diff": diff, "shape": list(ref.shape)}


def main(argv=None):
    import argparse
    import json
    import paddle
    import yaml
    ap = argparse.ArgumentParser(description="exported model == dygraph model")
    ap.add_argument("task", choices=["det", "seg"])
    ap.add_argument("-c", "--config", required=True)
    ap.add_argument("--weights", required=True, help="the trained weights (.pdparams or without)")
    ap.add_argument("--export_dir", required=True)
    ap.add_argument("-o", "--opts", nargs="*", default=[], help="key=value overrides (dotted keys)")
    args = ap.parse_args(argv)
    paddle.set_device("cpu")
    weights = args.weights if args.weights.endswith(".pdparams") else args.weights + ".pdparams"
    state = paddle.load(weights)
    if args.task == "det":
        from .cli import build_det_model
        opts = {}
        for item in args.opts:
            key, value = item.split("=", 1)
            node = opts
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = yaml.safe_load(value)
        model, _ = build_det_model(args.config, opts)
        model.set_state_dict(state)
        report = [compare_det_export(model, args.export_dir, det_inputs(h, w, seed=i))
                  for i, (h, w) in enumerate(((128, 160), (160, 96)))]
    else:
        from .cli import build_seg_model
        model = build_seg_model(args.config, args.opts)
        model.set_state_dict(state)
        rng = np.random.default_rng(0)
        report = [compare_seg_export(model, args.export_dir,
                                     rng.standard_normal((1, 3, h, w)).astype("float32"))
                  for h, w in ((97, 131), (128, 128))]
    print("RESULT " + json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
