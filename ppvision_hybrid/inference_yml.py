"""``inference.yml`` beside a classification export, in PaddleClas's ``Global.export_for_fd``
layout (what FastDeploy, PaddleX and deploy/python/predict_cls.py read):

.. code-block:: yaml

    Global: {model_name: MixFormer_B0}
    PreProcess:
      transform_ops:                 # Infer.transforms without DecodeImage
        - ResizeImage: {resize_short: 256, interpolation: BICUBIC}
        - CropImage: {size: 224}
        - NormalizeImage: {scale: 0.00392156862745098, mean: [...], std: [...], order: '', channel_num: 3}
        - ToCHWImage: null
    PostProcess:
      Topk: {topk: 5, label_list: [tench, goldfish, ...]}   # label_list when the names are known

Interpolation names are written as PaddleX reads them (OpenCV's ``LINEAR``, ``BICUBIC``, ...;
Pillow's ``BILINEAR``, ... with ``backend: pil``); deploy/python/predict_cls.py reads both these
and PaddleClas's lower-case names. Written to a temporary file and renamed into place.
"""
import os
import tempfile

import yaml

__all__ = ["write_inference_yml", "default_transforms", "INFERENCE_YML"]

INFERENCE_YML = "inference.yml"


def default_transforms(image_shape=(3, 224, 224)):
    """ImageNet evaluation pre-processing for a square input: short side to size / 0.875
    (256 for 224), centre crop, ImageNet mean/std, CHW."""
    size = int(image_shape[-1])
    return [{"ResizeImage": {"resize_short": int(round(size / 0.875)), "interpolation": "bicubic"}},
            {"CropImage": {"size": size}},
            {"NormalizeImage": {"scale": 1.0 / 255.0, "mean": [0.485, 0.456, 0.406],
                                "std": [0.229, 0.224, 0.225], "order": ""}},
            {"ToCHWImage": None}]


#: PaddleClas's interpolation names -> PaddleX's, per resize backend
_INTERPOLATION = {"cv2": {"nearest": "NEAREST", "bilinear": "LINEAR", "bicubic": "BICUBIC", "area": "AREA",
                          "lanczos": "LANCZOS4"},
                  "pil": {"nearest": "NEAREST", "bilinear": "BILINEAR", "bicubic": "BICUBIC", "box": "BOX",
                          "lanczos": "LANCZOS", "hamming": "HAMMING"}}


def _plain(op):
    """Numbers as floats ('1.0/255.0' -> 0.0039...), channel_num 3 (PaddleClas's dump rules),
    interpolation names in PaddleX's spelling."""
    (name, kwargs), = op.items()
    kwargs = dict(kwargs or {})
    if kwargs.get("interpolation"):
        table = _INTERPOLATION.get(str(kwargs.get("backend", "cv2")).lower(), _INTERPOLATION["cv2"])
        kwargs["interpolation"] = table.get(str(kwargs["interpolation"]).lower(), kwargs["interpolation"])
    if name == "NormalizeImage":
        scale = kwargs.get("scale", 1.0 / 255.0)
        if isinstance(scale, str):
            num, _, den = scale.partition("/")
            scale = float(num) / float(den or 1)
        kwargs.update(scale=float(scale), channel_num=3)
    return {name: kwargs or None}


def write_inference_yml(save_dir, transforms, topk=5, label_list=None, model_name=None):
    """Write ``save_dir/inference.yml``; returns its path."""
    cfg = {}
    if model_name:
        cfg["Global"] = {"model_name": str(model_name)}
    ops = [_plain(op) for op in transforms if "DecodeImage" not in op]
    if not any("ToCHWImage" in op for op in ops):
        ops.append({"ToCHWImage": None})
    cfg["PreProcess"] = {"transform_ops": ops}
    post = {"topk": int(topk)}
    if label_list:
        post["label_list"] = [str(n) for n in label_list]
    cfg["PostProcess"] = {"Topk": post}
    path = os.path.join(save_dir, INFERENCE_YML)
    fd, tmp = tempfile.mkstemp(prefix=".inference_yml_", dir=save_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yaml.safe_dump(cfg, f, sort_keys=False, allow_unicode=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
