"""Policy and occlusion augmentations with PaddleClas's op names and arguments.

* ``AutoAugment`` -- the ImageNet policy of Cubuk et al., "AutoAugment: Learning Augmentation
  Policies from Data" (CVPR 2019, Appendix, Table 9): one of 25 two-op sub-policies per image.
* ``RandAugment`` / ``RandAugmentV2`` / ``RandAugmentV3`` -- Cubuk et al., "RandAugment"
  (2020): ``num_layers`` ops drawn uniformly, all at one ``magnitude`` (0-10). V1 is PaddleClas's
  original table, V2 its EfficientNetV2 table (absolute translations, enhance factors
  ``0.1 + 1.8 m``, SolarizeAdd and Cutout), V3 its MobileViTV2 table (black fill,
  configurable interpolation, "increasing" posterize/solarize).
* ``ColorJitter`` -- brightness/contrast/saturation/hue jitter (Paddle's
  ``paddle.vision.transforms.ColorJitter``), applied with probability ``prob``.
* ``Cutout`` (DeVries & Taylor 2017), ``GridMask`` (Chen et al. 2020), ``HideAndSeek`` (Singh &
  Lee 2017) and ``PCALighting`` (Krizhevsky et al. 2012's PCA colour noise).

Ops take HWC uint8 arrays or PIL images (the colour ops) or HWC/CHW float arrays (the
occlusion ops, usually after NormalizeImage) and return arrays.
"""
import random

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

__all__ = ["AutoAugment", "RandAugment", "RandAugmentV2", "RandAugmentV3", "ColorJitter",
           "Cutout", "GridMask", "HideAndSeek", "PCALighting", "POLICY_OPS", "as_array",
           "image_size", "is_chw"]


def as_array(img):
    """PIL image -> a writable numpy array; arrays pass through."""
    return np.array(img) if isinstance(img, Image.Image) else img


def is_chw(img):
    """Whether a 3-D array is CHW (channels first): few leading channels, many trailing."""
    return img.ndim == 3 and img.shape[0] in (1, 3, 4) and img.shape[-1] not in (1, 3, 4)


def image_size(img):
    """(width, height) of a PIL image or an HWC array."""
    return img.size if isinstance(img, Image.Image) else (img.shape[1], img.shape[0])


def _pil(img):
    return img if isinstance(img, Image.Image) else Image.fromarray(np.ascontiguousarray(img))


def _sign():
    return random.choice((-1, 1))


def _rotate_grey_corners(img, degrees):
    """Rotate, filling the uncovered corners with grey 128 (through an alpha composite)."""
    rotated = img.convert("RGBA").rotate(degrees)
    return Image.composite(rotated, Image.new("RGBA", rotated.size, (128,) * 4), rotated).convert(img.mode)


def _affine(img, matrix, fill, resample=Image.NEAREST):
    return img.transform(img.size, Image.AFFINE, matrix, resample, fillcolor=fill)


def _solarize_add(img, add, threshold=128):
    lut = [min(255, i + add) if i < threshold else i for i in range(256)]
    return img.point(lut * len(img.getbands())) if img.mode in ("L", "RGB") else img


def _cutout_square(img, half, fill):
    """Fill a square of half-side ``half`` centred on a uniform point (clipped to the image)."""
    arr = np.array(img)
    h, w = arr.shape[:2]
    cy, cx = np.random.randint(0, h + 1), np.random.randint(0, w + 1)
    arr[max(0, cy - half):min(h, cy + half), max(0, cx - half):min(w, cx + half)] = fill
    return Image.fromarray(arr)


def _enhance(name):
    return getattr(ImageEnhance, name)


# ---- the ImageNet AutoAugment policy --------------------------------------------------------

#: magnitude for each of the 10 levels (AutoAugment paper, Table 6)
_LEVELS = {
    "shearX": np.linspace(0, 0.3, 10), "shearY": np.linspace(0, 0.3, 10),
    "translateX": np.linspace(0, 150 / 331, 10), "translateY": np.linspace(0, 150 / 331, 10),
    "rotate": np.linspace(0, 30, 10), "color": np.linspace(0.0, 0.9, 10),
    "posterize": np.round(np.linspace(8, 4, 10), 0).astype(np.int64),
    "solarize": np.linspace(256, 0, 10), "contrast": np.linspace(0.0, 0.9, 10),
    "sharpness": np.linspace(0.0, 0.9, 10), "brightness": np.linspace(0.0, 0.9, 10),
    "autocontrast": [0] * 10, "equalize": [0] * 10, "invert": [0] * 10,
}

#: (probability, op, level) pairs of the 25 ImageNet sub-policies (paper, Table 9 as used in
#: PaddleClas's ImageNetPolicy)
_IMAGENET_POLICY = (
    ((0.4, "posterize", 8), (0.6, "rotate", 9)), ((0.6, "solarize", 5), (0.6, "autocontrast", 5)),
    ((0.8, "equalize", 8), (0.6, "equalize", 3)), ((0.6, "posterize", 7), (0.6, "posterize", 6)),
    ((0.4, "equalize", 7), (0.2, "solarize", 4)), ((0.4, "equalize", 4), (0.8, "rotate", 8)),
    ((0.6, "solarize", 3), (0.6, "equalize", 7)), ((0.8, "posterize", 5), (1.0, "equalize", 2)),
    ((0.2, "rotate", 3), (0.6, "solarize", 8)), ((0.6, "equalize", 8), (0.4, "posterize", 6)),
    ((0.8, "rotate", 8), (0.4, "color", 0)), ((0.4, "rotate", 9), (0.6, "equalize", 2)),
    ((0.0, "equalize", 7), (0.8, "equalize", 8)), ((0.6, "invert", 4), (1.0, "equalize", 8)),
    ((0.6, "color", 4), (1.0, "contrast", 8)), ((0.8, "rotate", 8), (1.0, "color", 2)),
    ((0.8, "color", 8), (0.8, "solarize", 7)), ((0.4, "sharpness", 7), (0.6, "invert", 8)),
    ((0.6, "shearX", 5), (1.0, "equalize", 9)), ((0.4, "color", 0), (0.6, "equalize", 3)),
    ((0.4, "equalize", 7), (0.2, "solarize", 4)), ((0.6, "solarize", 5), (0.6, "autocontrast", 5)),
    ((0.6, "invert", 4), (1.0, "equalize", 8)), ((0.6, "color", 4), (1.0, "contrast", 8)),
    ((0.8, "equalize", 8), (0.6, "equalize", 3)),
)


def _signed_ops(fill, shear_resample=Image.BICUBIC, translate_resample=Image.NEAREST,
                relative_translate=True):
    """The op table shared by AutoAugment and RandAugment V1/V2: ``op(img, magnitude)``."""
    def translate(img, m, axis):
        shift = m * (img.size[axis] if relative_translate else 1) * _sign()
        matrix = (1, 0, shift, 0, 1, 0) if axis == 0 else (1, 0, 0, 0, 1, shift)
        return _affine(img, matrix, fill, translate_resample)

    return {
        "shearX": lambda img, m: _affine(img, (1, m * _sign(), 0, 0, 1, 0), fill, shear_resample),
        "shearY": lambda img, m: _affine(img, (1, 0, 0, m * _sign(), 1, 0), fill, shear_resample),
        "translateX": lambda img, m: translate(img, m, 0),
        "translateY": lambda img, m: translate(img, m, 1),
        "rotate": _rotate_grey_corners,
        "color": lambda img, m: _enhance("Color")(img).enhance(1 + m * _sign()),
        "posterize": lambda img, m: ImageOps.posterize(img, int(m)),
        "solarize": lambda img, m: ImageOps.solarize(img, m),
        "contrast": lambda img, m: _enhance("Contrast")(img).enhance(1 + m * _sign()),
        "sharpness": lambda img, m: _enhance("Sharpness")(img).enhance(1 + m * _sign()),
        "brightness": lambda img, m: _enhance("Brightness")(img).enhance(1 + m * _sign()),
        "autocontrast": lambda img, m: ImageOps.autocontrast(img),
        "equalize": lambda img, m: ImageOps.equalize(img),
        "invert": lambda img, m: ImageOps.invert(img),
    }


class AutoAugment:
    """One random ImageNet sub-policy per image: each of its two ops applied with its own
    probability at its own level."""

    def __init__(self, fillcolor=(128, 128, 128)):
        ops = _signed_ops(tuple(fillcolor))
        self.policies = [tuple((p, ops[name], _LEVELS[name][level]) for p, name, level in sub)
                         for sub in _IMAGENET_POLICY]

    def __call__(self, img):
        pil = _pil(img)
        for p, op, magnitude in random.choice(self.policies):
            if random.random() < p:
                pil = op(pil, magnitude)
        return np.asarray(pil)


# ---- RandAugment tables -----------------------------------------------------------------------

class RandAugment:
    """``num_layers`` ops drawn uniformly (numpy) from the table, each always applied at the
    fixed ``magnitude`` (0-10)."""

    MAX_LEVEL = 10

    def __init__(self, num_layers=2, magnitude=5, fillcolor=(128, 128, 128)):
        self.num_layers = int(num_layers)
        self.magnitude = magnitude
        level = magnitude / self.MAX_LEVEL
        self.ops = _signed_ops(tuple(fillcolor))
        self.levels = self.level_map(level)

    @staticmethod
    def level_map(level):
        return {"shearX": 0.3 * level, "shearY": 0.3 * level,
                "translateX": 150.0 / 331 * level, "translateY": 150.0 / 331 * level,
                "rotate": 30 * level, "color": 0.9 * level, "posterize": int(4.0 * level),
                "solarize": 256.0 * level, "contrast": 0.9 * level, "sharpness": 0.9 * level,
                "brightness": 0.9 * level, "autocontrast": 0, "equalize": 0, "invert": 0}

    def __call__(self, img):
        pil = _pil(img)
        names = list(self.levels)
        for _ in range(self.num_layers):
            name = names[np.random.randint(len(names))]
            pil = self.ops[name](pil, self.levels[name])
        return np.asarray(pil)


class RandAugmentV2(RandAugment):
    """The EfficientNetV2 table: absolute translations (pixels), nearest-neighbour affines,
    signed rotations, enhance factors ``0.1 + 1.8 m``, SolarizeAdd and Cutout.
    ``progress_magnitude`` is read only by progressive training."""

    def __init__(self, num_layers=2, magnitude=5, progress_magnitude=None, fillcolor=(128, 128, 128)):
        super().__init__(num_layers, magnitude, fillcolor)
        self.progress_magnitude = progress_magnitude
        fill = tuple(fillcolor)
        self.ops = _signed_ops(fill, shear_resample=Image.NEAREST, relative_translate=False)
        self.ops.update({
            "rotate": lambda img, m: _rotate_grey_corners(img, m * _sign()),
            "color": lambda img, m: _enhance("Color")(img).enhance(m),
            "contrast": lambda img, m: _enhance("Contrast")(img).enhance(m),
            "sharpness": lambda img, m: _enhance("Sharpness")(img).enhance(m),
            "brightness": lambda img, m: _enhance("Brightness")(img).enhance(m),
            "solarize_add": lambda img, m: _solarize_add(img, m),
            "cutout": lambda img, m: _cutout_square(img, m, fill[0]),
        })

    @staticmethod
    def level_map(level):
        factor = 1.8 * level + 0.1
        return {"shearX": 0.3 * level, "shearY": 0.3 * level, "translateX": 100.0 * level,
                "translateY": 100.0 * level, "rotate": 30 * level, "color": factor,
                "posterize": int(4.0 * level), "solarize": int(256.0 * level),
                "solarize_add": int(110.0 * level), "contrast": factor, "sharpness": factor,
                "brightness": factor, "autocontrast": 0, "equalize": 0, "invert": 0,
                "cutout": int(40 * level)}


class RandAugmentV3(RandAugment):
    """The MobileViTV2 table: black fill, ``interpolation`` for every geometric op, signed
    rotations, posterize keeps ``8 - 4 m`` bits and solarize thresholds at ``255 (1 - m)``."""

    def __init__(self, num_layers=2, magnitude=3, fillcolor=(0, 0, 0), interpolation="bicubic"):
        super().__init__(num_layers, magnitude, fillcolor)
        fill = tuple(fillcolor)
        resample = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
                    "box": Image.BOX, "lanczos": Image.LANCZOS, "hamming": Image.HAMMING}.get(
                        str(interpolation).lower(), Image.BICUBIC)
        self.ops = _signed_ops(fill, shear_resample=resample, translate_resample=resample)
        self.ops["rotate"] = lambda img, m: img.rotate(m * _sign(), resample, fillcolor=fill)

    @staticmethod
    def level_map(level):
        table = RandAugment.level_map(level)
        table.update({"posterize": 8 - int(4.0 * level), "solarize": 255.0 * (1 - level)})
        return table


# ---- colour and occlusion ops -------------------------------------------------------------------

class ColorJitter:
    """Paddle's ColorJitter (random order of brightness, contrast, saturation and hue jitter)
    applied with probability ``prob`` (default 2: always, as in PaddleClas)."""

    def __init__(self, prob=2, brightness=0, contrast=0, saturation=0, hue=0):
        from paddle.vision.transforms import ColorJitter as PaddleColorJitter
        self.prob = prob
        self.jitter = PaddleColorJitter(brightness, contrast, saturation, hue)

    def __call__(self, img):
        if np.random.random() >= self.prob:
            return img
        return np.asarray(self.jitter(_pil(img)))


def _layout(img):
    """(height, width, set(region)) for an HWC or CHW array."""
    chw = is_chw(img)
    h, w = (img.shape[1:3] if chw else img.shape[:2])

    def region(y0, y1, x0, x1, value):
        if chw:
            img[:, y0:y1, x0:x1] = value
        else:
            img[y0:y1, x0:x1] = value
    return h, w, chw, region


class Cutout:
    """``n_holes`` squares of side ``length`` centred on uniform points (clipped) set to
    ``fill_value`` (a random colour per hole with ``fill_value: none``). PaddleClas's own op
    never fills (its fill branch is unreachable); this one does what the paper and the key say."""

    def __init__(self, n_holes=1, length=112, fill_value=(0, 0, 0)):
        self.n_holes = int(n_holes)
        self.length = int(length)
        self.fill_value = None if fill_value in (None, "none") else fill_value

    def __call__(self, img):
        img = np.array(as_array(img))
        h, w, chw, region = _layout(img)
        channels = img.shape[0] if chw else (img.shape[2] if img.ndim == 3 else 1)
        for _ in range(self.n_holes):
            y, x = np.random.randint(h), np.random.randint(w)
            fill = self.fill_value
            if fill is None:
                fill = [random.randint(0, 255) for _ in range(channels)]
            fill = np.asarray(fill, img.dtype)
            if chw and fill.ndim:
                fill = fill.reshape(-1, 1, 1)
            region(max(0, y - self.length // 2), min(h, y + self.length // 2),
                   max(0, x - self.length // 2), min(w, x + self.length // 2), fill)
        return img


class GridMask:
    """GridMask: zero a rotated grid of squares of side ``ratio * d`` (``d`` uniform in
    [d1, d2)), with probability ``prob``; ``mode: 1`` keeps the grid and zeroes the rest.
    PaddleClas ramps ``prob`` with a module-level epoch counter its engine never advances (so
    there the op never fires); here ``prob`` applies as given."""

    def __init__(self, d1=96, d2=224, rotate=1, ratio=0.5, mode=0, prob=1.0):
        self.d1, self.d2 = int(d1), int(d2)
        self.rotate = max(1, int(rotate))
        self.ratio = float(ratio)
        self.mode = int(mode)
        self.prob = float(prob)

    def mask(self, h, w):
        hh, ww = int(1.5 * h), int(1.5 * w)
        d = np.random.randint(self.d1, max(self.d1 + 1, self.d2))
        side = int(d * self.ratio + 0.5)
        mask = np.ones((hh, ww), np.float32)
        st_h, st_w = np.random.randint(d), np.random.randint(d)
        for i in range(-1, hh // d + 1):
            s = min(max(d * i + st_h, 0), hh)
            mask[s:min(max(d * i + st_h + side, 0), hh), :] = 0
        for i in range(-1, ww // d + 1):
            s = min(max(d * i + st_w, 0), ww)
            mask[:, s:min(max(d * i + st_w + side, 0), ww)] = 0
        angle = np.random.randint(self.rotate)
        mask = np.asarray(Image.fromarray(np.uint8(mask)).rotate(angle))
        top, left = (hh - h) // 2, (ww - w) // 2
        mask = mask[top:top + h, left:left + w].astype(np.float32)
        return 1 - mask if self.mode == 1 else mask

    def __call__(self, img):
        if np.random.rand() > self.prob:
            return img
        img = as_array(img)
        h, w, chw, _ = _layout(img)
        mask = self.mask(h, w)
        mask = mask[None] if chw else (mask[..., None] if img.ndim == 3 else mask)
        return (img * mask).astype(img.dtype)


class HideAndSeek:
    """Split the image into a grid of side 16, 32, 44 or 56 (or none) and hide each cell with
    probability 0.5."""

    GRID_SIZES = (0, 16, 32, 44, 56)
    HIDE_PROB = 0.5

    def __call__(self, img):
        grid = int(np.random.choice(self.GRID_SIZES))
        if grid == 0:
            return img
        img = np.array(as_array(img))
        h, w, _, region = _layout(img)
        for x in range(0, w, grid):
            for y in range(0, h, grid):
                if random.random() <= self.HIDE_PROB:
                    region(y, min(h, y + grid), x, min(w, x + grid), 0)
        return img


class PCALighting:
    """AlexNet-style lighting noise: add ``eigvec @ (alpha * eigval)`` (alpha ~ N(0, 0.1)) to
    every pixel of an HWC image, with ImageNet's RGB eigen-decomposition; returns float32."""

    ALPHA_STD = 0.1
    EIGVAL = np.array([0.2175, 0.0188, 0.0045], np.float32)
    EIGVEC = np.array([[-0.5675, 0.7192, 0.4009],
                       [-0.5808, -0.0045, -0.8140],
                       [-0.5836, -0.6948, 0.4203]], np.float32)

    def __call__(self, img):
        alpha = np.random.normal(0, self.ALPHA_STD, size=3).astype(np.float32)
        offset = (self.EIGVEC * (alpha * self.EIGVAL)[None, :]).sum(axis=1)
        return as_array(img).astype(np.float32) + offset.reshape(1, 1, 3)


POLICY_OPS = {cls.__name__: cls for cls in (AutoAugment, RandAugment, RandAugmentV2, RandAugmentV3,
                                            ColorJitter, Cutout, GridMask, HideAndSeek, PCALighting)}
