"""The evaluation image ops, one implementation for training-time evaluation
(:mod:`ppvision_hybrid.data.transforms`) and deployment (:mod:`ppvision_hybrid.predict`,
deploy/python/predict_cls.py): ``DecodeImage``, ``ResizeImage``, ``CropImage``,
``NormalizeImage`` and ``ToCHWImage`` with PaddleClas's names, arguments and meanings (our own
implementations, written from PaddleClas's ``ppcls/data/preprocess`` behaviour).

Model-free: numpy and OpenCV only; Pillow is imported when an op is asked for its ``pil``
backend or given a PIL image, so an ONNX Runtime deployment needs no Pillow.
"""
import random
import sys

import cv2
import numpy as np

__all__ = ["DecodeImage", "ResizeImage", "CropImage", "NormalizeImage", "ToCHWImage", "Resizer",
           "EVAL_OPS", "build_transforms", "read_and_transform", "parse_number", "as_array",
           "is_chw", "image_size"]

_CV2_INTERP = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR,
               "bicubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4,
               "random": (cv2.INTER_LINEAR, cv2.INTER_CUBIC)}
_PIL_INTERP_NAMES = ("nearest", "bilinear", "bicubic", "box", "lanczos", "hamming", "random")
#: PaddleX's spellings (what an export's inference.yml may hold) -> PaddleClas's
_INTERP_ALIASES = {"linear": "bilinear", "lanczos4": "lanczos"}


def _pil_interp(name):
    from PIL import Image
    table = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
             "box": Image.BOX, "lanczos": Image.LANCZOS, "hamming": Image.HAMMING,
             "random": (Image.BILINEAR, Image.BICUBIC)}
    return table[name]


def is_pil(img):
    """Whether ``img`` is a PIL image (without importing Pillow when nothing has)."""
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(img, pil.Image)


def as_array(img):
    """PIL image -> a writable numpy array; arrays pass through."""
    return np.array(img) if is_pil(img) else img


def is_chw(img):
    """Whether a 3-D array is CHW (channels first): few leading channels, many trailing."""
    return img.ndim == 3 and img.shape[0] in (1, 3, 4) and img.shape[-1] not in (1, 3, 4)


def image_size(img):
    """(width, height) of a PIL image or an HWC array."""
    return img.size if is_pil(img) else (img.shape[1], img.shape[0])


def parse_number(value):
    """Floats as YAML configs spell them: ``1e-3``, ``0.5`` or the PaddleClas ``1.0/255.0``."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    return float(text)


class Resizer:
    """Resize to ``(w, h)`` with OpenCV (``backend='cv2'``) or Pillow (``'pil'``), as PaddleClas's
    ``UnifiedResize``: ``interpolation`` by name (``random`` picks bilinear or bicubic per call),
    ``None`` is bilinear. Returns an array (a PIL input stays PIL with ``return_numpy=False``)."""

    def __init__(self, interpolation=None, backend="cv2", return_numpy=True):
        backend = str(backend or "cv2").lower()
        if backend not in ("cv2", "pil"):
            raise ValueError(f"resize backend must be 'cv2' or 'pil', got {backend!r}")
        names = tuple(_CV2_INTERP) if backend == "cv2" else _PIL_INTERP_NAMES
        name = str(interpolation if interpolation is not None else "bilinear").lower()
        name = _INTERP_ALIASES.get(name, name)
        if name not in names:
            raise ValueError(f"unknown interpolation {interpolation!r} for backend {backend}; "
                             f"accepted: {sorted(names)}")
        self.backend = backend
        self.modes = _CV2_INTERP[name] if backend == "cv2" else _pil_interp(name)
        self.return_numpy = return_numpy

    def __call__(self, img, size_wh):
        size = (int(size_wh[0]), int(size_wh[1]))
        mode = random.choice(self.modes) if isinstance(self.modes, tuple) else self.modes
        if self.backend == "cv2":
            return cv2.resize(as_array(img), size, interpolation=mode)
        from PIL import Image
        pil = img if is_pil(img) else Image.fromarray(np.ascontiguousarray(img))
        out = pil.resize(size, mode)
        return np.asarray(out) if self.return_numpy or not is_pil(img) else out


class DecodeImage:
    """Encoded bytes -> HWC uint8 array, RGB when ``to_rgb`` (BGR otherwise), CHW with
    ``channel_first``. ``backend='pil'`` decodes with Pillow; ``to_np=False`` keeps Pillow's
    image (``pil``) or OpenCV's BGR array (``cv2``) and ignores ``to_rgb``/``channel_first``,
    as in PaddleClas. Grey and RGBA files become 3 channels; an already decoded (RGB) image
    passes through."""

    def __init__(self, to_rgb=True, channel_first=False, to_np=True, backend="cv2"):
        backend = str(backend or "cv2").lower()
        if backend not in ("cv2", "pil"):
            raise ValueError(f"DecodeImage backend must be 'cv2' or 'pil', got {backend!r}")
        self.to_rgb = to_rgb
        self.channel_first = channel_first
        self.to_np = to_np
        self.backend = backend

    def _decode(self, data):
        if self.backend == "pil":
            import io
            from PIL import Image
            try:
                return Image.open(io.BytesIO(bytes(data))).convert("RGB")
            except Exception as e:
                raise ValueError(f"could not decode image bytes (corrupt or unsupported format): {e}") from None
        buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray)) else data
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)  # BGR, always 3 channels
        if img is None:
            raise ValueError("could not decode image bytes (corrupt or unsupported format)")
        return img

    def __call__(self, data):
        if is_pil(data) or (isinstance(data, np.ndarray) and data.ndim == 3):
            img = data  # already decoded (RGB)
            decoded_rgb = True
        else:
            img = self._decode(data)
            decoded_rgb = self.backend == "pil"
        if not self.to_np:
            return img
        img = as_array(img)
        if decoded_rgb != bool(self.to_rgb):
            img = img[:, :, ::-1]
        img = np.ascontiguousarray(img)
        if self.channel_first:
            img = img.transpose((2, 0, 1))
        return img


class ResizeImage:
    """Resize to ``size`` (int or [w, h]) or the short side to ``resize_short`` keeping aspect
    (``resize_short`` wins when both are set, as in PaddleClas)."""

    def __init__(self, size=None, resize_short=None, interpolation=None, backend="cv2",
                 return_numpy=True):
        if resize_short is not None and resize_short > 0:
            self.resize_short, self.size = resize_short, None
        elif size is not None:
            self.resize_short = None
            self.size = (size, size) if isinstance(size, int) else tuple(size)
        else:
            raise ValueError("ResizeImage needs exactly one of 'size' or 'resize_short'")
        self.resize = Resizer(interpolation, backend, return_numpy)

    def __call__(self, img):
        w, h = image_size(img)
        if self.resize_short is not None:
            scale = float(self.resize_short) / min(h, w)
            size = (int(round(w * scale)), int(round(h * scale)))
        else:
            size = self.size
        return self.resize(img, size)


class CropImage:
    """Center crop to ``size`` (int or [w, h])."""

    def __init__(self, size):
        self.w, self.h = (size, size) if isinstance(size, int) else size

    def __call__(self, img):
        img = as_array(img)
        h, w = img.shape[:2]
        if h < self.h or w < self.w:
            raise ValueError(f"CropImage({self.w}x{self.h}) got a smaller image {w}x{h}; "
                             f"resize first (ResizeImage resize_short >= crop size)")
        top, left = (h - self.h) // 2, (w - self.w) // 2
        return img[top:top + self.h, left:left + self.w]


class NormalizeImage:
    """``(img * scale - mean) / std`` as float32 (float16 with ``output_fp16``). ``order: chw``
    (the default) gives CHW output: a CHW input (``DecodeImage channel_first``) as in PaddleClas,
    or an HWC one, transposed first. ``channel_num: 4`` appends a zero channel (PaddleClas's
    4-channel NHWC recipe)."""

    def __init__(self, scale=None, mean=None, std=None, order="chw", output_fp16=False,
                 channel_num=3):
        if channel_num not in (3, 4):
            raise ValueError(f"NormalizeImage channel_num must be 3 or 4, got {channel_num}")
        self.scale = np.float32(parse_number(scale if scale is not None else 1.0 / 255.0))
        if order not in ("chw", "hwc", ""):
            raise ValueError(f"NormalizeImage order must be 'chw', 'hwc' or '', got '{order}'")
        self.order = order
        shape = (3, 1, 1) if order == "chw" else (1, 1, 3)
        self.mean = np.array(mean if mean is not None else [0.485, 0.456, 0.406], np.float32).reshape(shape)
        self.std = np.array(std if std is not None else [0.229, 0.224, 0.225], np.float32).reshape(shape)
        self.output_fp16 = output_fp16
        self.channel_num = channel_num

    def __call__(self, img):
        img = as_array(img)
        if self.order == "chw" and img.ndim == 3 and not is_chw(img):
            img = img.transpose((2, 0, 1))
        img = (img.astype(np.float32) * self.scale - self.mean) / self.std
        if self.channel_num == 4:
            axis = 0 if self.order == "chw" else 2
            pad_shape = list(img.shape)
            pad_shape[axis] = 1
            img = np.concatenate([img, np.zeros(pad_shape, np.float32)], axis=axis)
        img = np.ascontiguousarray(img)
        return img.astype(np.float16) if self.output_fp16 else img


class ToCHWImage:
    """HWC -> CHW."""

    def __call__(self, img):
        return np.ascontiguousarray(as_array(img).transpose((2, 0, 1)))


#: the ops an evaluation or deployment pipeline uses (the training ops are in data/transforms.py)
EVAL_OPS = {cls.__name__: cls for cls in (DecodeImage, ResizeImage, CropImage, NormalizeImage, ToCHWImage)}


def build_transforms(op_list, ops=None):
    """``[{OpName: {kwargs}}, ...]`` (PaddleClas list form) -> list of callables, from ``ops``
    (name -> class; default :data:`EVAL_OPS`)."""
    ops = EVAL_OPS if ops is None else ops
    built = []
    for item in op_list or []:
        if not isinstance(item, dict) or len(item) != 1:
            raise ValueError(f"each transform op must be a one-key mapping {{OpName: {{args}}}}, got {item!r}")
        (name, kwargs), = item.items()
        if name not in ops:
            raise ValueError(f"unknown transform op '{name}'; accepted: {sorted(ops)}")
        built.append(ops[name](**(kwargs or {})))
    return built


def read_and_transform(path, ops):
    """The file's bytes through ``ops``; a decoding or op error names the file."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        for op in ops:
            data = op(data)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return as_array(data)
