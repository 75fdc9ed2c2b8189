"""Per-image transform ops with PaddleClas names, arguments and meanings (our own implementations,
written from PaddleClas's ``ppcls/data/preprocess`` behaviour).

Every op is a callable ``op(img) -> img``. Images are HWC uint8 arrays after :class:`DecodeImage`
(a PIL image with ``backend: pil, to_np: False``; every op accepts either); :class:`NormalizeImage`
turns them into float32 (HWC, or CHW with ``order='chw'``); :class:`ToCHWImage` transposes. The
dataset transposes a remaining HWC result to CHW, as PaddleClas does, so training configs need no
``ToCHWImage``.

The policy augmentations (AutoAugment, RandAugment V1-V3, ColorJitter, Cutout, GridMask,
HideAndSeek, PCALighting) live in :mod:`.policy_augment`; every op is listed in
:data:`TRANSFORM_OPS`.

Randomness comes from Python's ``random`` and numpy's global generator, both of which the
engine seeds and stores in checkpoints (so a resumed run draws the same augmentations).
"""
import math
import random

import cv2
import numpy as np
from PIL import Image

from .autoaugment import RandAugment as TimmRandAugment
from .policy_augment import POLICY_OPS, as_array, image_size, is_chw

__all__ = ["DecodeImage", "ResizeImage", "RandCropImage", "RandFlipImage", "CropImage",
           "CropImageAtRatio", "TimmAutoAugment", "NormalizeImage", "ToCHWImage", "RandomErasing",
           "TRANSFORM_OPS", "build_transforms", "apply_transforms", "parse_number", "Resizer"]

_CV2_INTERP = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR,
               "bicubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4,
               "random": (cv2.INTER_LINEAR, cv2.INTER_CUBIC)}
_PIL_INTERP = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
               "box": Image.BOX, "lanczos": Image.LANCZOS, "hamming": Image.HAMMING,
               "random": (Image.BILINEAR, Image.BICUBIC)}


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
        table = _CV2_INTERP if backend == "cv2" else _PIL_INTERP
        if interpolation is None:
            interpolation = "bilinear"
        if str(interpolation).lower() not in table:
            raise ValueError(f"unknown interpolation {interpolation!r} for backend {backend}; "
                             f"accepted: {sorted(table)}")
        self.backend = backend
        self.modes = table[str(interpolation).lower()]
        self.return_numpy = return_numpy

    def __call__(self, img, size_wh):
        size = (int(size_wh[0]), int(size_wh[1]))
        mode = random.choice(self.modes) if isinstance(self.modes, tuple) else self.modes
        if self.backend == "cv2":
            return cv2.resize(as_array(img), size, interpolation=mode)
        pil = img if isinstance(img, Image.Image) else Image.fromarray(np.ascontiguousarray(img))
        out = pil.resize(size, mode)
        return np.asarray(out) if self.return_numpy or not isinstance(img, Image.Image) else out


class DecodeImage:
    """Encoded bytes -> HWC uint8 array, RGB when ``to_rgb`` (BGR otherwise), CHW with
    ``channel_first``. ``backend='pil'`` decodes with Pillow; ``to_np=False`` keeps Pillow's
    image (``pil``) or OpenCV's BGR array (``cv2``) and ignores ``to_rgb``/``channel_first``,
    as in PaddleClas. Grey and RGBA files become 3 channels."""

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
        if isinstance(data, Image.Image) or (isinstance(data, np.ndarray) and data.ndim == 3):
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


class CropImageAtRatio:
    """Center square crop of ``size / (size + pad)`` of the short side, resized to ``size``
    (the "crop pct" evaluation of timm-trained models)."""

    def __init__(self, size, pad, interpolation="bilinear"):
        self.size = int(size)
        self.ratio = self.size / (self.size + float(pad))
        self.resize = Resizer(interpolation, "pil")

    def __call__(self, img):
        img = as_array(img)
        h, w = img.shape[:2]
        crop = int(self.ratio * min(h, w))
        top, left = (h - crop) // 2, (w - crop) // 2
        return self.resize(img[top:top + crop, left:left + crop], (self.size, self.size))


class RandCropImage:
    """Random resized crop as PaddleClas samples it: one aspect ratio from ``ratio`` (uniform, or
    log-uniform with ``use_log_aspect``), the area fraction from ``scale`` capped so the crop
    fits, a uniform position, then a resize to ``size`` (int or [w, h]). ``progress_size`` is
    read only by progressive training (``Global.train_mode: progressive``)."""

    def __init__(self, size, progress_size=None, scale=None, ratio=None, interpolation=None,
                 use_log_aspect=False, backend="cv2"):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.progress_size = progress_size
        self.scale = [parse_number(s) for s in (scale or [0.08, 1.0])]
        self.ratio = [parse_number(r) for r in (ratio or [3.0 / 4.0, 4.0 / 3.0])]
        self.use_log_aspect = bool(use_log_aspect)
        self.resize = Resizer(interpolation, backend)

    def __call__(self, img):
        img = as_array(img)
        if self.use_log_aspect:
            aspect = math.exp(random.uniform(math.log(self.ratio[0]), math.log(self.ratio[1])))
        else:
            aspect = random.uniform(*self.ratio)
        h, w = img.shape[:2]
        bound = min((w / h) / aspect, (h / w) * aspect)
        area = w * h * random.uniform(min(self.scale[0], bound), min(self.scale[1], bound))
        cw = max(1, min(w, int(math.sqrt(area * aspect))))
        ch = max(1, min(h, int(math.sqrt(area / aspect))))
        left, top = random.randint(0, w - cw), random.randint(0, h - ch)
        return self.resize(img[top:top + ch, left:left + cw], self.size)


class RandFlipImage:
    """Flip with probability 0.5: ``flip_code`` 1 horizontal, 0 vertical, -1 both (cv2 codes)."""

    def __init__(self, flip_code=1):
        if flip_code not in (-1, 0, 1):
            raise ValueError(f"flip_code must be -1, 0 or 1, got {flip_code}")
        self.flip_code = flip_code

    def __call__(self, img):
        if random.random() < 0.5:
            return cv2.flip(as_array(img), self.flip_code)
        return img


class TimmAutoAugment:
    """RandAugment from a timm-style ``config_str`` such as ``rand-m9-mstd0.5-inc1``
    (Cubuk et al. 2020; the ``-mstd`` magnitude noise and ``inc`` increasing ops follow timm's
    convention), applied with probability ``prob``. ``config_str: null`` is the identity (PaddleClas
    itself fails on it). timm's ``auto-...`` and ``augmix-...`` policies are not implemented and
    refused by name. Operates on HWC uint8 RGB arrays through PIL."""

    def __init__(self, config_str="rand-m9-mstd0.5-inc1", interpolation="bicubic", img_size=224,
                 mean=(0.485, 0.456, 0.406), prob=1.0):
        self.prob = float(prob)
        self.augment = None
        if config_str is None:
            return
        config_str = str(config_str).strip()
        if config_str.startswith(("auto", "augmix")):
            raise ValueError(f"TimmAutoAugment config_str '{config_str}': timm's AutoAugment and "
                             f"AugMix policies are not implemented (use 'rand-...', or the "
                             f"AutoAugment op for the ImageNet AutoAugment policy)")
        if not config_str.startswith("rand"):
            raise ValueError(f"TimmAutoAugment config_str must start with 'rand', got '{config_str}'")
        fill = tuple(min(255, int(round(255 * m))) for m in mean)
        self.augment = TimmRandAugment.from_config_str(config_str, fill=fill,
                                                       interpolation=interpolation or "bicubic")

    def __call__(self, img):
        if self.augment is None or random.random() >= self.prob:
            return img
        return np.asarray(self.augment(Image.fromarray(np.ascontiguousarray(as_array(img)))))


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


class RandomErasing:
    """Random erasing (Zhong et al. 2020) with probability ``EPSILON``: a rectangle of area
    fraction in [sl, sh] and aspect ratio in [r1, 1/r1] (log-uniform when ``use_log_aspect``)
    is filled with per-pixel normal noise (``mode='pixel'``), per-channel noise (``'rand'``,
    also spelled ``'channel'``) or ``mean`` (``'const'``). Works on float HWC or CHW arrays
    (after NormalizeImage); the input array is not modified."""

    def __init__(self, EPSILON=0.5, sl=0.02, sh=0.4, r1=0.3, mean=(0.0, 0.0, 0.0), attempt=100,
                 use_log_aspect=False, mode="const"):
        self.probability = parse_number(EPSILON)
        self.sl, self.sh, self.r1 = parse_number(sl), parse_number(sh), parse_number(r1)
        self.attempt = attempt
        self.use_log_aspect = use_log_aspect
        if mode not in ("const", "pixel", "rand", "channel"):
            raise ValueError(f"RandomErasing mode must be 'const', 'pixel' or 'rand', got '{mode}'")
        self.mode = "rand" if mode == "channel" else mode
        self.mean = np.array(mean, np.float32)

    def __call__(self, img):
        if random.random() > self.probability:
            return img
        img = as_array(img)
        chw = is_chw(img)
        h, w = (img.shape[1:3] if chw else img.shape[:2])
        c = img.shape[0] if chw else (img.shape[2] if img.ndim == 3 else 1)
        area = h * w
        for _ in range(self.attempt):
            target = random.uniform(self.sl, self.sh) * area
            if self.use_log_aspect:
                aspect = math.exp(random.uniform(math.log(self.r1), math.log(1.0 / self.r1)))
            else:
                aspect = random.uniform(self.r1, 1.0 / self.r1)
            eh, ew = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if 0 < ew < w and 0 < eh < h:
                top, left = random.randint(0, h - eh), random.randint(0, w - ew)
                if self.mode == "pixel":
                    fill = np.random.normal(size=(c, eh, ew)).astype(img.dtype)
                elif self.mode == "rand":
                    fill = np.random.normal(size=(c, 1, 1)).astype(img.dtype)
                else:
                    fill = self.mean[:c].reshape(c, 1, 1).astype(img.dtype)
                img = img.copy()
                if chw:
                    img[:, top:top + eh, left:left + ew] = fill
                elif img.ndim == 3:
                    img[top:top + eh, left:left + ew, :] = np.transpose(
                        np.broadcast_to(fill, (c, eh, ew)), (1, 2, 0))
                else:
                    img[top:top + eh, left:left + ew] = np.broadcast_to(fill, (c, eh, ew))[0]
                return img
        return img


TRANSFORM_OPS = {cls.__name__: cls for cls in (
    DecodeImage, ResizeImage, RandCropImage, RandFlipImage, CropImage, CropImageAtRatio,
    TimmAutoAugment, NormalizeImage, ToCHWImage, RandomErasing)}
TRANSFORM_OPS.update(POLICY_OPS)


def build_transforms(op_list):
    """``[{OpName: {kwargs}}, ...]`` (PaddleClas list form) -> list of callables."""
    ops = []
    for item in op_list or []:
        if not isinstance(item, dict) or len(item) != 1:
            raise ValueError(f"each transform op must be a one-key mapping {{OpName: {{args}}}}, got {item!r}")
        (name, kwargs), = item.items()
        if name not in TRANSFORM_OPS:
            raise ValueError(f"unknown transform op '{name}'; accepted: {sorted(TRANSFORM_OPS)}")
        ops.append(TRANSFORM_OPS[name](**(kwargs or {})))
    return ops


def apply_transforms(img, ops):
    for op in ops:
        img = op(img)
    return as_array(img) if isinstance(img, Image.Image) else img
