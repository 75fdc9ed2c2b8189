"""Dense prediction through PaddleDetection / PaddleSeg: configs, backbone adapters, demo data,
and train -> evaluate -> export -> paddle.inference == dygraph pipelines.

CI runs one family per architecture (the smallest, fastest variants on 128x160 demo images);
benchmarks/dense_all_families.py runs every family.
"""
import glob
import json
import os

import numpy as np
import pytest

import paddleseg  # noqa: E402,F401  (installed by install.sh: an import failure fails the run)
import ppdet  # noqa: E402,F401

import paddle  # noqa: E402

import ppvision_hybrid  # noqa: E402
from ppvision_hybrid.adapters import setup_det, setup_seg  # noqa: E402
from ppvision_hybrid.adapters.common import smallest_variant  # noqa: E402
from ppvision_hybrid.datasets.dense_demo import make_dense_demo  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DET_CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "det", "*", "*.yml")))
SEG_CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "seg", "*", "*.yml")))
DET_CONFIGS = [c for c in DET_CONFIGS if "_base_" not in c and not os.path.basename(c).startswith("_")]
SEG_CONFIGS = [c for c in SEG_CONFIGS if "_base_" not in c]
FAMILIES = ppvision_hybrid.list_families()
#: families as the config file names spell them (the registry's, without underscores)
CONFIG_FAMILIES = [f.replace("_", "") for f in FAMILIES]


def _family_has(family, name):
    return name in ppvision_hybrid.list_models(family=family)


@pytest.fixture(scope="module", autouse=True)
def registered():
    setup_det()
    setup_seg()
    paddle.set_device("cpu")
    yield


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("dense_demo"))
    info = make_dense_demo(root, num_images=4, num_val=2)
    return info


# ---- demo data --------------------------------------------------------------------------------
def test_demo_data_real_format_and_deterministic(demo, tmp_path):
    import cv2
    from pycocotools.coco import COCO
    coco = COCO(os.path.join(demo["det_root"], "annotations", "instances_train.json"))
    assert len(coco.getImgIds()) == 4 and len(coco.getAnnIds()) == demo["num_annotations"] > 0
    for ann in coco.loadAnns(coco.getAnnIds()):
        mask = coco.annToMask(ann)
        assert mask.sum() > 0 and len(ann["segmentation"][0]) >= 8  # polygons, >= 4 points
        x, y, w, h = ann["bbox"]
        ys, xs = np.nonzero(mask)
        assert abs(xs.min() - x) <= 1.5 and abs(ys.min() - y) <= 1.5 and w > 0 and h > 0
    label = cv2.imread(os.path.join(demo["seg_root"], "labels", "demo_000.png"), cv2.IMREAD_UNCHANGED)
    assert label.ndim == 2 and set(np.unique(label)) <= {0, 1, 2, 255} and len(np.unique(label)) >= 3
    again = make_dense_demo(str(tmp_path), num_images=4)
    for rel in ("det/annotations/instances_train.json", "seg/labels/demo_003.png", "det/images/demo_002.png"):
        with open(os.path.join(demo["root"], rel), "rb") as a, open(os.path.join(again["root"], rel), "rb") as b:
            assert a.read() == b.read(), rel


# ---- every shipped config parses with the toolkit's loader and builds -------------------------
def test_config_matrix_covers_the_issue():
    names = [os.path.basename(c) for c in DET_CONFIGS + SEG_CONFIGS]
    for family in CONFIG_FAMILIES:
        assert any(family in n and n.startswith("mask_rcnn") for n in names), family
        assert any(family in n and n.startswith("upernet") for n in names), family
    assert any(n.startswith("cascade_mask_rcnn_fpn_3x") for n in names)
    assert any(n.startswith("retinanet_fpn_1x_transxnet") for n in names)
    assert any(n.startswith("mask_rcnn_fpn_3x_ms") for n in names)
    for family in ("transxnet", "maformer"):
        assert any(n.startswith("semantic_fpn_80k_" + family) for n in names)
        assert any(n.startswith("upernet_160k_" + family) for n in names)


def _arch_of(config):
    import yaml
    with open(config) as f:
        text = f.read()
    for line in text.splitlines():
        if line.strip().startswith("arch:"):
            return line.split(":", 1)[1].split("#")[0].strip()
    return None


@pytest.mark.parametrize("config", DET_CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_det_config_builds(config):
    from ppvision_hybrid.adapters.cli import load_det_config
    from ppdet.core.workspace import create
    arch = _arch_of(config)
    assert arch in ppvision_hybrid.list_models(), f"{config}: arch {arch} is not registered"
    cfg = load_det_config(config, {"PVHBackbone": {"pretrained": False}})
    assert cfg.architecture in ("MaskRCNN", "CascadeRCNN", "RetinaNet")
    if "demo" not in config:  # the paper recipe: AdamW, no decay on norms, ImageNet statistics
        assert cfg.OptimizerBuilder["optimizer"]["type"] == "AdamW"
        assert cfg.OptimizerBuilder["optimizer"]["param_groups"][0]["weight_decay"] == 0.0
        assert "coco" in cfg.TrainDataset.dataset_dir
    norm = [t for t in cfg.TrainReader["sample_transforms"] if "NormalizeImage" in t][0]["NormalizeImage"]
    assert norm["mean"] == [0.485, 0.456, 0.406]
    with paddle.LazyGuard():  # construct every layer without initialising weights (fast)
        model = create(cfg.architecture)
    backbone = model.backbone
    assert type(backbone).__name__ == "PVHBackbone" and backbone.arch == arch
    shapes = backbone.out_shape
    expected = [4 * 2 ** i for i in cfg.PVHBackbone["return_idx"]]
    assert [s.stride for s in shapes] == expected
    assert [s.channels for s in shapes] == [backbone.model.feature_info[i]["channels"]
                                            for i in cfg.PVHBackbone["return_idx"]]
    # the neck was built for these widths
    lateral_in = [conv.weight.shape[1] for conv in model.neck.lateral_convs]
    assert lateral_in == [s.channels for s in shapes][-len(lateral_in):]


@pytest.mark.parametrize("config", SEG_CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_seg_config_builds(config):
    from paddleseg.cvlibs import Config, SegBuilder
    from ppvision_hybrid.adapters.cli import fill_pfpn_inplanes
    arch = _arch_of(config)
    assert arch in ppvision_hybrid.list_models(), f"{config}: arch {arch} is not registered"
    cfg = Config(config, opts=["model.backbone.pretrained=False"])
    before = cfg.dic["model"].get("fpn_inplanes")
    fill_pfpn_inplanes(cfg.dic)
    if before is not None and "demo" not in config:
        assert before == cfg.dic["model"]["fpn_inplanes"]  # shipped widths are right
    with paddle.LazyGuard():
        model = SegBuilder(cfg).model
    assert type(model).__name__ in ("UPerNet", "PFPNNet")
    assert model.backbone.feat_channels == [model.backbone.model.feature_info[i]["channels"]
                                            for i in range(4)]
    if "demo" not in config:
        assert cfg.dic["optimizer"]["type"] == "AdamW"
        assert cfg.dic["train_dataset"]["type"] == "ADE20K"
        assert cfg.dic["train_dataset"]["transforms"][-1]["mean"] == [0.485, 0.456, 0.406]


# ---- adapters: strides and channels at 800x1333 and 203x317 for every family -------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_backbone_features_every_family(family):
    from ppvision_hybrid.adapters.ppdet import PVHBackbone as DetBackbone
    from ppvision_hybrid.adapters.seg import PVHBackbone as SegBackbone
    arch = smallest_variant(family)
    det = DetBackbone(arch=arch, return_idx=[0, 1, 2, 3])
    det.eval()
    channels = [det.model.feature_info[i]["channels"] for i in range(4)]
    assert [s.channels for s in det.out_shape] == channels
    assert [s.stride for s in det.out_shape] == [4, 8, 16, 32]
    with paddle.no_grad():
        for h, w in ((800, 1333), (203, 317)):
            image = paddle.randn([1, 3, h, w])
            feats = det({"image": image})
            assert [f.shape for f in feats] == [[1, c, -(-h // s), -(-w // s)]
                                                for c, s in zip(channels, (4, 8, 16, 32))], (h, w)
            assert all(np.isfinite(f.numpy()).all() for f in feats)
        seg = SegBackbone(arch=arch, out_indices=(1, 3))
        seg.eval()
        assert seg.feat_channels == [channels[1], channels[3]]
        feats = seg(paddle.randn([1, 3, 203, 317]))
        assert [f.shape[1:] for f in feats] == [[channels[1], 26, 40], [channels[3], 7, 10]]


def test_adapter_frozen_stages_and_errors():
    from ppvision_hybrid.adapters.ppdet import PVHBackbone as DetBackbone
    arch = smallest_variant(FAMILIES[0])
    model = DetBackbone(arch=arch, frozen_stages=1)
    stats = ("_mean", "_variance")  # BatchNorm statistics are never trainable
    frozen = {n for n, p in model.model.named_parameters() if p.stop_gradient and not n.endswith(stats)}
    assert frozen and frozen == {n for n in model.frozen_parameters if not n.endswith(stats)}
    assert any(n.startswith(("stem", "patch_embed")) for n in frozen)
    trainable = [n for n, p in model.model.named_parameters() if not p.stop_gradient]
    assert trainable  # later stages still train
    with pytest.raises(KeyError, match="Unknown model name"):
        DetBackbone(arch="NoSuchNet_T")
    with pytest.raises(ValueError, match="extra_out_norm"):
        DetBackbone(arch=arch, extra_out_norm="batchnorm")
    normed = DetBackbone(arch=arch, return_idx=[2, 3], extra_out_norm="layernorm")
    feats = normed({"image": paddle.randn([1, 3, 64, 96])})
    means = feats[0].mean(axis=1).numpy()  # LayerNorm over channels (weight 1, bias 0 at init)
    np.testing.assert_allclose(means, 0, atol=1e-4)


# ---- pipelines: train a few iterations, evaluate, export, paddle.inference == dygraph ---------
def _pick(preferred):
    for name in preferred:
        if name in ppvision_hybrid.list_models():
            return name
    return smallest_variant(FAMILIES[0])


DET_PIPELINES = [  # (demo config, backbone): one family each, fastest first
    ("mask_rcnn_demo.yml", ("MixFormer_B0", "DualFormer_T")),
    ("cascade_mask_rcnn_demo.yml", ("DualFormer_T", "MixFormer_B0")),
    ("retinanet_demo.yml", ("TransXNet_T", "MixFormer_B0")),
]


@pytest.mark.parametrize("config,preferred", DET_PIPELINES, ids=[c for c, _ in DET_PIPELINES])
def test_det_pipeline(config, preferred, demo, tmp_path):
    from ppvision_hybrid.adapters.pipeline import run_det_pipeline
    arch = _pick(preferred)
    out = run_det_pipeline(os.path.join(ROOT, "configs", "det", "demo", config), arch,
                           demo["det_root"], str(tmp_path))
    # pycocotools ran: AP in [0, 1] for boxes (and masks for the Mask R-CNNs)
    assert out["bbox_ap"] is not None and 0.0 <= out["bbox_ap"] <= 1.0
    if "mask" in config:
        assert out["mask_ap"] is not None and 0.0 <= out["mask_ap"] <= 1.0
        assert os.path.isfile(os.path.join(str(tmp_path), "mask.json"))
    assert {"model.json", "model.pdiparams", "infer_cfg.yml"} <= set(out["export_files"])
    assert all(c["bbox_num"] > 0 for c in out["compare"])  # the comparison saw detections
    if config == "mask_rcnn_demo.yml":
        # fix 2 is what makes Trainer.export work: without it the export raises
        from ppvision_hybrid import compat
        with compat.fix_disabled("det_export_full_graph"):
            with pytest.raises(Exception, match="main_program"):
                out["trainer"].export(str(tmp_path / "unfixed"))


SEG_PIPELINES = [
    ("upernet_demo.yml", ("MixFormer_B0", "DualFormer_T")),
    ("semantic_fpn_demo.yml", ("TransXNet_T", "MAFormer_S", "MixFormer_B0")),
]


@pytest.mark.parametrize("config,preferred", SEG_PIPELINES, ids=[c for c, _ in SEG_PIPELINES])
def test_seg_pipeline(config, preferred, demo, tmp_path):
    from ppvision_hybrid.adapters.pipeline import run_seg_pipeline
    arch = _pick(preferred)
    out = run_seg_pipeline(os.path.join(ROOT, "configs", "seg", "demo", config), arch,
                           demo["seg_root"], str(tmp_path))
    assert 0.0 <= out["miou"] <= 1.0 and out["acc"] > 0.0
    assert {"model.json", "model.pdiparams", "deploy.yaml"} <= set(out["export_files"])
    assert [c["shape"][1:] for c in out["compare"]] == [[3, 97, 131], [3, 128, 128]]


def test_adapter_loads_imagenet_checkpoint(tmp_path):
    """A classification checkpoint loads into the pyramid: classifier keys dropped, dense-only
    output norms left at their init, everything else strict."""
    from ppvision_hybrid.adapters.ppdet import PVHBackbone as DetBackbone
    from ppvision_hybrid.weights import CheckpointError
    arch = _pick(("TransXNet_T", "FocalTransformer_T", "MixFormer_B0"))
    classifier = ppvision_hybrid.create_model(arch)
    state = classifier.state_dict()
    path = str(tmp_path / f"{arch}.pdparams")
    paddle.save(state, path)
    det = DetBackbone(arch=arch, pretrained=path)
    loaded = det.model.state_dict()
    shared = [k for k in loaded if k in state]
    assert len(shared) > 0.9 * len(loaded)
    for k in shared[:: max(1, len(shared) // 20)]:
        np.testing.assert_array_equal(loaded[k].numpy(), state[k].numpy())
    broken = {k: v for k, v in state.items() if k != shared[0]}
    paddle.save(broken, path)
    with pytest.raises(CheckpointError, match="missing"):
        DetBackbone(arch=arch, pretrained=path)
