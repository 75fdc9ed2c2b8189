"""Dense exports (full PaddleDetection / PaddleSeg models with our backbones) in Paddle Inference
set up exactly as PaddleDetection's and PaddleSeg's ``deploy/python/infer.py`` set it up.

The control is the same architecture with a ResNet-18 backbone (ppdet ``ResNet`` depth 18,
PaddleSeg ``ResNet18_vd``), exported the same way: wherever it runs, our exports must run and
equal dygraph; where it fails, ours must fail with the same (Paddle's) error. On Paddle 3.3.1
every oneDNN setting fails for the control too: the toolkits' FPN / heads resize with
``interpolate(size=...)``, whose oneDNN kernel cannot take the op's empty ``scale`` attribute
("ConvertPirAttribute2RuntimeAttribute not support [pir::ArrayAttribute<pir::DoubleAttribute>]").

CI: the demo Mask R-CNN and Semantic FPN with the smallest variant of each family;
``PPVH_FULL_TESTS=1``: every demo architecture, every variant and every setting. Weights are random (what is
checked is the graph, not the accuracy).
"""
import os
import re

import numpy as np
import pytest

from conftest import FULL, ROOT

pytest.importorskip("ppdet")
pytest.importorskip("paddleseg")

import paddle  # noqa: E402

import ppvision_hybrid  # noqa: E402
from ppvision_hybrid.registry import smallest_per_family  # noqa: E402
from test_deploy import CONSUMER_SETTINGS, _with_memory_optim_fix  # noqa: E402

MODELS = ppvision_hybrid.list_models() if FULL else smallest_per_family()
DET_CONFIGS = (["mask_rcnn_demo.yml", "cascade_mask_rcnn_demo.yml", "retinanet_demo.yml"] if FULL
               else ["mask_rcnn_demo.yml"])
SEG_CONFIGS = ["semantic_fpn_demo.yml", "upernet_demo.yml"] if FULL else ["semantic_fpn_demo.yml"]
CONTROL = "resnet18"
_NO_ONEDNN_CALL = ("set_mkldnn_cache_capacity", "enable_mkldnn")
#: infer.py with --enable_mkldnn True, with its default (False: no oneDNN call, so oneDNN stays
#: on in Paddle 3.x), and a consumer that turns oneDNN off.
DENSE_SETTINGS = {
    "det": {"paddledetection": CONSUMER_SETTINGS["paddledetection"],
            "paddledetection_mkldnn_false": ("dir", tuple(s for s in CONSUMER_SETTINGS["paddledetection"][1]
                                                          if s[0] not in _NO_ONEDNN_CALL)),
            "disable_mkldnn": CONSUMER_SETTINGS["disable_mkldnn"]},
    "seg": {"paddleseg": CONSUMER_SETTINGS["paddleseg"],
            "paddleseg_mkldnn_false": ("files", tuple(s for s in CONSUMER_SETTINGS["paddleseg"][1]
                                                      if s[0] not in _NO_ONEDNN_CALL)),
            "disable_mkldnn": ("files", CONSUMER_SETTINGS["disable_mkldnn"][1])},
}


def run_as_consumer(model_dir, setting, feeds):
    """Every output of the exported ``model_dir/model.json`` for each feed dict, in a Config set
    up by ``setting`` (a :data:`DENSE_SETTINGS` entry; memory optimization as 3.3.1 needs it)."""
    from paddle.inference import Config, create_predictor
    constructor, steps = setting
    if constructor == "dir":
        config = Config(model_dir, "model")  # PaddleDetection: Config(model_dir, model_prefix)
    else:
        config = Config(os.path.join(model_dir, "model.json"), os.path.join(model_dir, "model.pdiparams"))
    for method, *args in _with_memory_optim_fix(steps):
        getattr(config, method)(*args)
    predictor = create_predictor(config)
    results = []
    for feed in feeds:
        for name in predictor.get_input_names():
            handle = predictor.get_input_handle(name)
            handle.reshape(list(feed[name].shape))
            handle.copy_from_cpu(np.ascontiguousarray(feed[name]))
        predictor.run()
        results.append([predictor.get_output_handle(n).copy_to_cpu() for n in predictor.get_output_names()])
    return results


def _det_mismatch(outputs, reference):
    """None if the predictor's detections equal dygraph's (the dense pipelines' criteria:
    equal box counts, boxes within 1e-3, fewer than 0.1% of mask pixels flipped)."""
    got = {}
    for out in outputs:
        key = {2: "bbox", 1: "bbox_num", 3: "mask"}.get(out.ndim)
        if key == "bbox" and out.shape[1] != 6:
            continue
        got[key] = out
    if not np.array_equal(got.get("bbox_num"), reference["bbox_num"]):
        return f"bbox_num {got.get('bbox_num')} vs {reference['bbox_num']}"
    if not np.allclose(got["bbox"], reference["bbox"], atol=1e-3, rtol=1e-3):
        return f"boxes differ by {np.abs(got['bbox'] - reference['bbox']).max():.2e}"
    if "mask" in reference and reference["mask"].size and (got["mask"] != reference["mask"]).mean() >= 1e-3:
        return f"{(got['mask'] != reference['mask']).mean():.2%} of mask pixels differ"
    return None


def _seg_mismatch(outputs, reference):
    err = float(np.abs(outputs[0] - reference).max() / max(1.0, float(np.abs(reference).max())))
    return None if err <= 1e-4 else f"logits differ by {err:.2e} (relative)"


def _outcome(task, model_dir, cases, setting):
    try:
        results = run_as_consumer(model_dir, setting, [feed for feed, _ in cases])
    except Exception as err:  # the predictor failed to build or run
        message = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        return "error", re.sub(r"predictor_id \d+", "predictor_id N", message)
    check = _det_mismatch if task == "det" else _seg_mismatch
    problems = [p for p in (check(out, ref) for out, (_, ref) in zip(results, cases)) if p]
    return ("mismatch", problems[0]) if problems else ("ok", None)


@pytest.fixture(scope="module")
def dense_exports(tmp_path_factory):
    """(task, config, backbone) -> (export dir, [(feed, dygraph reference)]), exported once with
    the toolkit's own export (ppdet ``Trainer.export``; tools/export_seg.py for PaddleSeg)."""
    from ppvision_hybrid.adapters import setup_det, setup_seg
    from ppvision_hybrid.datasets.dense_demo import make_dense_demo
    setup_det()
    setup_seg()
    paddle.set_device("cpu")
    demo = make_dense_demo(str(tmp_path_factory.mktemp("dense_demo")), num_images=2, num_val=1)
    cache = {}

    def get(task, config, backbone):
        key = (task, config, backbone)
        if key not in cache:
            out = str(tmp_path_factory.mktemp(f"{task}_{backbone}"))
            paddle.seed(0)
            cache[key] = (_export_det if task == "det" else _export_seg)(config, backbone, out, demo)
        return cache[key]
    return get


def _export_det(config, backbone, out, demo):
    from ppdet.engine import Trainer
    from ppvision_hybrid.adapters.cli import load_det_config
    from ppvision_hybrid.adapters.verify import det_inputs
    opts = {"epoch": 1, "use_gpu": False}
    if backbone == CONTROL:
        arch = os.path.splitext(config)[0].replace("_demo", "")
        arch = {"mask_rcnn": "MaskRCNN", "cascade_mask_rcnn": "CascadeRCNN", "retinanet": "RetinaNet"}[arch]
        opts.update({arch: {"backbone": "ResNet"}, "ResNet": {
            "depth": 18, "variant": "b", "norm_type": "bn", "freeze_at": -1, "return_idx": [0, 1, 2, 3],
            "num_stages": 4}})
    else:
        opts["PVHBackbone"] = {"arch": backbone, "pretrained": False}
    cfg = load_det_config(os.path.join(ROOT, "configs", "det", "demo", config), opts)
    for key in ("TrainDataset", "EvalDataset", "TestDataset"):
        cfg[key].dataset_dir = demo["det_root"]
    trainer = Trainer(cfg, mode="test")
    trainer.model.eval()
    cases = []
    for seed, (h, w) in enumerate(((128, 160), (160, 96))):  # multiples of 32, as ppdet pads
        feed = det_inputs(h, w, seed=seed)
        with paddle.no_grad():
            ref = trainer.model({k: paddle.to_tensor(v) for k, v in feed.items()})
        cases.append((feed, {k: v.numpy() for k, v in ref.items() if k in ("bbox", "bbox_num", "mask")}))
    trainer.export(out)  # calls convert_to_deploy on our backbone, as for ppdet's own RepVGG nets
    return os.path.join(out, os.path.splitext(config)[0]), cases


def _export_seg(config, backbone, out, demo):
    from ppvision_hybrid.adapters.cli import build_seg_model
    from ppvision_hybrid.adapters.pipeline import export_seg_model
    if backbone == CONTROL:
        import yaml
        from paddleseg.cvlibs import manager
        from paddleseg.models.backbones import ResNet18_vd
        with open(os.path.join(ROOT, "configs", "seg", "demo", config)) as f:
            spec = dict(yaml.safe_load(f)["model"])
        model_class = manager.MODELS[spec.pop("type")]
        spec.pop("backbone")
        if "fpn_inplanes" in spec:
            spec["fpn_inplanes"] = [64, 128, 256, 512]  # ResNet-18's stage widths
        model = model_class(num_classes=3, backbone=ResNet18_vd(), **spec)
    else:
        model = build_seg_model(os.path.join(ROOT, "configs", "seg", "demo", config),
                                [f"model.backbone.arch={backbone}"])
    model.eval()
    rng = np.random.default_rng(0)
    cases = []
    for h, w in ((97, 131), (128, 128)):
        x = rng.standard_normal((1, 3, h, w)).astype("float32")
        with paddle.no_grad():
            cases.append(({"x": x}, model(paddle.to_tensor(x))[0].numpy()))
    export_seg_model(model, out)
    return out, cases


def _params():
    out = []
    for task, configs in (("det", DET_CONFIGS), ("seg", SEG_CONFIGS)):
        for config in configs:
            # CI: the script's oneDNN-on sequence and oneDNN off; its default flag (the same
            # oneDNN-on pipeline without the two oneDNN calls) only with PPVH_FULL_TESTS=1
            for setting in [s for s in DENSE_SETTINGS[task] if FULL or not s.endswith("_mkldnn_false")]:
                out += [pytest.param(task, config, setting, name, id=f"{config}-{setting}-{name}")
                        for name in MODELS]
    return out


@pytest.fixture(scope="module")
def control_outcome(dense_exports):
    cache = {}

    def get(task, config, setting):
        if (task, config, setting) not in cache:
            cache[(task, config, setting)] = _outcome(task, *dense_exports(task, config, CONTROL),
                                                      DENSE_SETTINGS[task][setting])
        return cache[(task, config, setting)]
    return get


@pytest.mark.parametrize("task,config,setting,name", _params())
def test_dense_export_runs_wherever_the_resnet_control_runs(dense_exports, control_outcome, task, config,
                                                            setting, name):
    steps = DENSE_SETTINGS[task][setting]
    control = control_outcome(task, config, setting)
    ours = _outcome(task, *dense_exports(task, config, name), steps)
    if control[0] == "ok":
        assert ours[0] == "ok", f"{name} {config} in {setting}: {ours} where the ResNet-18 control runs"
    else:
        assert control[0] == "error", f"the control mismatches dygraph in {setting}: {control}"
        assert ours == control, f"{name} {config} in {setting}: {ours}; the control: {control}"
    if setting == "disable_mkldnn":  # every toolkit graph runs without oneDNN: checked, not assumed
        assert control[0] == "ok" and ours[0] == "ok", (control, ours)
