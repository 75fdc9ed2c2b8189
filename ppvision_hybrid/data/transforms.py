"""Per-image transform ops with PaddleClas names, arguments and meanings (our own implementations,
written from PaddleClas's ``ppcls/data/preprocess`` behaviour). The evaluation ops (DecodeImage,
ResizeImage, CropImage, NormalizeImage, ToCHWImage) are :mod:`ppvision_hybrid.preprocess`'s, the
same classes deploy/python/predict_cls.py runs.

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

from ..preprocess import (CropImage, DecodeImage, NormalizeImage, Resizer, ResizeImage, ToCHWImage,
                          as_array, is_chw, is_pil, parse_number)
from ..preprocess import build_transforms as _build_ops
from .autoaugment import RandAugment as TimmRandAugment
from .policy_augment import POLICY_OPS

__all__ = ["DecodeImage", "ResizeImage", "RandCropImage", "RandFlipImage", "CropImage",
           "CropImageAtRatio", "TimmAutoAugment", "NormalizeImage", "ToCHWImage", "RandomErasing",
           "TRANSFORM_OPS", "build_transforms", "apply_transforms", "parse_number", "Resizer"]

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
    return _build_ops(op_list, TRANSFORM_OPS)


def apply_transforms(img, ops):
    for op in ops:
        img = op(img)
    return as_array(img) if is_pil(img) else img
