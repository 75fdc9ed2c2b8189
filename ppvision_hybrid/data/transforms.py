"""Per-image transform ops with PaddleClas names and arguments (our own implementations).

Every op is a callable ``op(img) -> img`` on numpy arrays. Images are HWC uint8 after
:class:`DecodeImage`; :class:`NormalizeImage` turns them into float32 (HWC, or CHW with
``order='chw'``); :class:`ToCHWImage` transposes. The dataset transposes a remaining HWC
result to CHW, as PaddleClas does, so training configs need no ``ToCHWImage``.

Randomness comes from Python's ``random`` and numpy's global generator, both of which the
engine seeds and stores in checkpoints (so a resumed run draws the same augmentations).
"""
import math
import random

import cv2
import numpy as np
from PIL import Image

from .autoaugment import RandAugment

__all__ = ["DecodeImage", "ResizeImage", "RandCropImage", "RandFlipImage", "CropImage",
           "TimmAutoAugment", "NormalizeImage", "ToCHWImage", "RandomErasing", "TRANSFORM_OPS",
           "build_transforms", "parse_number"]

_CV2_INTERP = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR,
               "bicubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4,
               None: cv2.INTER_LINEAR}


def parse_number(value):
    """Floats as YAML configs spell them: ``1e-3``, ``0.5`` or the PaddleClas ``1.0/255.0``."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    return float(text)


def _interp(name):
    if name not in _CV2_INTERP:
        raise ValueError(f"unknown interpolation '{name}'; accepted: {sorted(k for k in _CV2_INTERP if k)}")
    return _CV2_INTERP[name]


def _resize(img, size_wh, interpolation):
    return cv2.resize(img, tuple(int(s) for s in size_wh), interpolation=_interp(interpolation))


class DecodeImage:
    """Encoded bytes -> HWC uint8 array (RGB when ``to_rgb``). Grey and RGBA become 3 channels."""

    def __init__(self, to_rgb=True, channel_first=False, to_np=True, backend="cv2"):
        self.to_rgb = to_rgb
        self.channel_first = channel_first

    def __call__(self, data):
        if isinstance(data, np.ndarray) and data.ndim == 3:
            img = data
        else:
            buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray)) else data
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)  # BGR, always 3 channels
            if img is None:
                raise ValueError("could not decode image bytes (corrupt or unsupported format)")
            if self.to_rgb:
                img = img[:, :, ::-1]
        img = np.ascontiguousarray(img)
        if self.channel_first:
            img = img.transpose((2, 0, 1))
        return img


class ResizeImage:
    """Resize to ``size`` (int or [w, h]) or the short side to ``resize_short`` keeping aspect."""

    def __init__(self, size=None, resize_short=None, interpolation=None, backend="cv2"):
        if (size is None) == (resize_short is None):
            raise ValueError("ResizeImage needs exactly one of 'size' or 'resize_short'")
        self.size = size
        self.resize_short = resize_short
        self.interpolation = interpolation

    def __call__(self, img):
        h, w = img.shape[:2]
        if self.resize_short is not None:
            scale = float(self.resize_short) / min(h, w)
            new_w, new_h = int(round(w * scale)), int(round(h * scale))
        elif isinstance(self.size, int):
            new_w = new_h = self.size
        else:
            new_w, new_h = self.size
        return _resize(img, (new_w, new_h), self.interpolation)


class CropImage:
    """Center crop to ``size`` (int or [w, h])."""

    def __init__(self, size):
        self.w, self.h = (size, size) if isinstance(size, int) else size

    def __call__(self, img):
        h, w = img.shape[:2]
        if h < self.h or w < self.w:
            raise ValueError(f"CropImage({self.w}x{self.h}) got a smaller image {w}x{h}; "
                             f"resize first (ResizeImage resize_short >= crop size)")
        top, left = (h - self.h) // 2, (w - self.w) // 2
        return img[top:top + self.h, left:left + self.w]


class RandCropImage:
    """Inception-style random resized crop: area fraction in ``scale``, aspect in ``ratio``
    (sampled log-uniformly), then resized to ``size``."""

    def __init__(self, size, scale=None, ratio=None, interpolation=None, backend="cv2"):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.scale = [parse_number(s) for s in (scale or [0.08, 1.0])]
        self.ratio = [parse_number(r) for r in (ratio or [3.0 / 4.0, 4.0 / 3.0])]
        self.interpolation = interpolation

    def __call__(self, img):
        h, w = img.shape[:2]
        area = h * w
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * random.uniform(*self.scale)
            aspect = math.exp(random.uniform(*log_ratio))
            cw = int(round(math.sqrt(target * aspect)))
            ch = int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                top, left = random.randint(0, h - ch), random.randint(0, w - cw)
                break
        else:  # fall back to the largest centred crop within the ratio range
            in_ratio = w / h
            if in_ratio < self.ratio[0]:
                cw, ch = w, int(round(w / self.ratio[0]))
            elif in_ratio > self.ratio[1]:
                ch, cw = h, int(round(h * self.ratio[1]))
            else:
                cw, ch = w, h
            top, left = (h - ch) // 2, (w - cw) // 2
        return _resize(img[top:top + ch, left:left + cw], self.size, self.interpolation)


class RandFlipImage:
    """Flip with probability 0.5: ``flip_code`` 1 horizontal, 0 vertical, -1 both (cv2 codes)."""

    def __init__(self, flip_code=1):
        if flip_code not in (-1, 0, 1):
            raise ValueError(f"flip_code must be -1, 0 or 1, got {flip_code}")
        self.flip_code = flip_code

    def __call__(self, img):
        if random.random() < 0.5:
            return cv2.flip(img, self.flip_code)
        return img


class TimmAutoAugment:
    """RandAugment from a timm-style ``config_str`` such as ``rand-m9-mstd0.5-inc1``
    (Cubuk et al. 2020; the ``-mstd`` magnitude noise and ``inc`` increasing ops follow timm's
    convention). Operates on HWC uint8 RGB arrays through PIL."""

    def __init__(self, config_str="rand-m9-mstd0.5-inc1", interpolation="bicubic", img_size=224,
                 mean=(0.485, 0.456, 0.406)):
        if not config_str.startswith("rand"):
            raise ValueError(f"TimmAutoAugment supports RandAugment config strings ('rand-...'), got "
                             f"'{config_str}'")
        fill = tuple(int(round(255 * m)) for m in mean)
        self.augment = RandAugment.from_config_str(config_str, fill=fill, interpolation=interpolation)

    def __call__(self, img):
        return np.asarray(self.augment(Image.fromarray(img)))


class NormalizeImage:
    """``(img * scale - mean) / std`` as float32; ``order`` 'chw' also transposes."""

    def __init__(self, scale=None, mean=None, std=None, order="chw", output_fp16=False,
                 channel_num=3):
        self.scale = np.float32(parse_number(scale if scale is not None else 1.0 / 255.0))
        self.mean = np.array(mean if mean is not None else [0.485, 0.456, 0.406], np.float32)
        self.std = np.array(std if std is not None else [0.229, 0.224, 0.225], np.float32)
        if order not in ("chw", "hwc", ""):
            raise ValueError(f"NormalizeImage order must be 'chw', 'hwc' or '', got '{order}'")
        self.order = order
        self.output_fp16 = output_fp16

    def __call__(self, img):
        img = (img.astype(np.float32) * self.scale - self.mean) / self.std
        if self.order == "chw":
            img = img.transpose((2, 0, 1))
        img = np.ascontiguousarray(img)
        return img.astype(np.float16) if self.output_fp16 else img


class ToCHWImage:
    """HWC -> CHW."""

    def __call__(self, img):
        return np.ascontiguousarray(img.transpose((2, 0, 1)))


class RandomErasing:
    """Random erasing (Zhong et al. 2020) with probability ``EPSILON``: a rectangle of area
    fraction in [sl, sh] and aspect ratio in [r1, 1/r1] (log-uniform when ``use_log_aspect``)
    is filled with per-pixel normal noise (``mode='pixel'``), per-channel noise ('channel') or
    zeros ('const'). Works on float HWC or CHW arrays (after NormalizeImage)."""

    def __init__(self, EPSILON=0.5, sl=0.02, sh=0.4, r1=0.3, mean=(0.0, 0.0, 0.0), attempt=100,
                 use_log_aspect=False, mode="const"):
        self.probability = parse_number(EPSILON)
        self.sl, self.sh, self.r1 = parse_number(sl), parse_number(sh), parse_number(r1)
        self.attempt = attempt
        self.use_log_aspect = use_log_aspect
        if mode not in ("const", "pixel", "channel"):
            raise ValueError(f"RandomErasing mode must be 'const', 'pixel' or 'channel', got '{mode}'")
        self.mode = mode
        self.mean = np.array(mean, np.float32)

    def __call__(self, img):
        if random.random() > self.probability:
            return img
        chw = img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3)
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
                elif self.mode == "channel":
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
    DecodeImage, ResizeImage, RandCropImage, RandFlipImage, CropImage, TimmAutoAugment,
    NormalizeImage, ToCHWImage, RandomErasing)}


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
    return img
