"""RandAugment (Cubuk et al., "RandAugment: Practical automated data augmentation with a
reduced search space", 2020) on PIL images, configured by timm-style strings:

``rand-m9-n2-mstd0.5-inc1``: magnitude 9 of 10, 2 ops per image, Gaussian magnitude noise
with std 0.5, ``inc1`` = the "increasing" op variants (a larger magnitude is always a
stronger change). Each chosen op is applied with probability ``p`` (0.5 as in timm).
"""
import random

from PIL import Image, ImageEnhance, ImageOps

_MAX_LEVEL = 10.0


def _signed(v):
    return -v if random.random() < 0.5 else v


def _affine(img, matrix, fill, resample):
    return img.transform(img.size, Image.AFFINE, matrix, resample=resample, fillcolor=fill)


class RandAugment:
    OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd",
           "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel",
           "TranslateYRel")

    def __init__(self, magnitude=9.0, num_layers=2, magnitude_std=0.0, increasing=True, prob=0.5,
                 fill=(128, 128, 128), interpolation="bicubic"):
        self.magnitude = float(magnitude)
        self.num_layers = int(num_layers)
        self.magnitude_std = float(magnitude_std)
        self.increasing = bool(increasing)
        self.prob = float(prob)
        self.fill = tuple(fill)
        self.resample = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
                         "nearest": Image.NEAREST}.get(interpolation, Image.BICUBIC)

    @classmethod
    def from_config_str(cls, config_str, **kwargs):
        parts = config_str.split("-")
        if parts[0] != "rand":
            raise ValueError(f"RandAugment config must start with 'rand', got '{config_str}'")
        args = dict(magnitude=9.0, num_layers=2, magnitude_std=0.0, increasing=False)
        for part in parts[1:]:
            if part.startswith("mstd"):
                args["magnitude_std"] = float(part[4:])
            elif part.startswith("inc"):
                args["increasing"] = bool(int(part[3:]))
            elif part.startswith("m"):
                args["magnitude"] = float(part[1:])
            elif part.startswith("n"):
                args["num_layers"] = int(part[1:])
            elif part.startswith("p"):
                args["prob"] = float(part[1:])
            else:
                raise ValueError(f"unknown RandAugment option '{part}' in '{config_str}' "
                                 f"(accepted: m<float>, n<int>, mstd<float>, inc<0|1>, p<float>)")
        args.update(kwargs)
        return cls(**args)

    def _level(self):
        m = self.magnitude
        if self.magnitude_std > 0:
            m = random.gauss(m, self.magnitude_std)
        return min(_MAX_LEVEL, max(0.0, m)) / _MAX_LEVEL  # in [0, 1]

    def apply_op(self, img, name, level):
        f = self.fill
        if name == "AutoContrast":
            return ImageOps.autocontrast(img)
        if name == "Equalize":
            return ImageOps.equalize(img)
        if name == "Invert":
            return ImageOps.invert(img)
        if name == "Rotate":
            return img.rotate(_signed(30.0 * level), resample=self.resample, fillcolor=f)
        if name == "Posterize":
            # increasing: fewer bits kept as the level grows (4 -> 1); otherwise 4 -> 8
            bits = 4 - int(round(3 * level)) if self.increasing else 4 + int(round(4 * level))
            return ImageOps.posterize(img, max(1, min(8, bits)))
        if name == "Solarize":
            thresh = 256 - 256 * level if self.increasing else 256 * level
            return ImageOps.solarize(img, int(thresh))
        if name == "SolarizeAdd":
            add = int(110 * level)
            lut = [min(255, i + add) if i < 128 else i for i in range(256)]
            return img.point(lut * len(img.getbands()))
        if name in ("Color", "Contrast", "Brightness", "Sharpness"):
            enhancer = getattr(ImageEnhance, name)(img)
            factor = 1.0 + _signed(0.9 * level) if self.increasing else 0.1 + 1.8 * level
            return enhancer.enhance(factor)
        if name == "ShearX":
            return _affine(img, (1, _signed(0.3 * level), 0, 0, 1, 0), f, self.resample)
        if name == "ShearY":
            return _affine(img, (1, 0, 0, _signed(0.3 * level), 1, 0), f, self.resample)
        if name == "TranslateXRel":
            return _affine(img, (1, 0, _signed(0.45 * level) * img.size[0], 0, 1, 0), f, self.resample)
        if name == "TranslateYRel":
            return _affine(img, (1, 0, 0, 0, 1, _signed(0.45 * level) * img.size[1]), f, self.resample)
        raise ValueError(f"unknown RandAugment op '{name}'")

    def __call__(self, img):
        for name in random.choices(self.OPS, k=self.num_layers):
            if random.random() < self.prob:
                img = self.apply_op(img, name, self._level())
        return img
