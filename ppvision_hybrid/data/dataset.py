"""ImageNet-layout datasets: an ``image_root`` folder and a ``cls_label_path`` list of
``relative/path.jpg label`` lines (PaddleClas format)."""
import os

import numpy as np
import paddle

from ..cli_errors import DataError
from .transforms import apply_transforms, build_transforms, is_chw

__all__ = ["ImageNetDataset", "DigitsDataset", "MultiScaleDataset", "DatasetNotFoundError",
           "DATASETS", "ensure_demo_data"]

IMAGENET_HELP = (
    "To train on ImageNet-1K, prepare it as PaddleClas does:\n"
    "  ./dataset/ILSVRC2012/train/<wnid>/*.JPEG, ./dataset/ILSVRC2012/val/<wnid or flat>/*.JPEG,\n"
    "  ./dataset/ILSVRC2012/train_list.txt and val_list.txt with one 'relative/path.JPEG label' per line\n"
    "  (label = class index 0..999), and label_list.txt with 'index name' lines for inference.\n"
    "  Paths are relative to the directory you run tools/train.py from; override them with\n"
    "  -o DataLoader.Train.dataset.image_root=... -o DataLoader.Train.dataset.cls_label_path=...\n"
    "No download needed to try the pipeline: python tools/train.py -c configs/demo/MixFormer_B0_digits.yaml")


class DatasetNotFoundError(FileNotFoundError):
    """The configured dataset folder or label list does not exist (or names missing files)."""


def ensure_demo_data(image_root):
    """Write the digits demo folder on first use: an ``image_root`` whose last component is
    ``digits`` and that does not exist yet (or is empty) is materialised (see :mod:`.digits`).
    Any other root, and a ``digits`` folder with files of its own, is left alone. Returns
    ``image_root``."""
    root = str(image_root or "")
    if root and os.path.basename(os.path.normpath(root)) == "digits":
        if not os.path.isdir(root) or not os.listdir(root):
            from .digits import materialize_digits
            materialize_digits(root)
    return image_root


class ImageNetDataset(paddle.io.Dataset):
    """Reads ``cls_label_path`` once, checks that every listed file exists (a list that points at
    missing files is reported up front, not at iteration 40,000), and returns
    ``(CHW float32 image, int64 label)``."""

    def __init__(self, image_root, cls_label_path, transform_ops=None, delimiter=None, relabel=False):
        ensure_demo_data(image_root)
        self.image_root = image_root
        self.cls_label_path = cls_label_path
        self.delimiter = delimiter
        self._check_paths()
        self.images, self.labels, self.line_numbers = self._load_list()
        if relabel:
            mapping = {v: i for i, v in enumerate(sorted(set(self.labels)))}
            self.labels = [mapping[v] for v in self.labels]
        self.ops = build_transforms(transform_ops)

    def _check_paths(self):
        missing = []
        if not os.path.isdir(self.image_root):
            missing.append(f"image_root '{self.image_root}'")
        if not os.path.isfile(self.cls_label_path):
            missing.append(f"cls_label_path '{self.cls_label_path}'")
        if missing:
            raise DatasetNotFoundError(
                f"{type(self).__name__}: missing {' and '.join(missing)} "
                f"(working directory: {os.getcwd()}).\n" + IMAGENET_HELP)

    def _load_list(self):
        images, labels, line_numbers, missing = [], [], [], []
        with open(self.cls_label_path, "r", encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                parts = line.rsplit(self.delimiter, 1) if self.delimiter else line.rsplit(None, 1)
                if len(parts) != 2:
                    raise DataError(f"{self.cls_label_path}:{line_no}: expected 'path label', got "
                                    f"'{line}'", exit_code=2)
                rel, label = parts
                try:
                    label = int(label)
                except ValueError:
                    raise DataError(f"{self.cls_label_path}:{line_no}: label '{label}' is not an "
                                    f"integer", exit_code=2) from None
                path = os.path.join(self.image_root, rel)
                if not os.path.isfile(path):
                    missing.append(path)
                images.append(path)
                labels.append(label)
                line_numbers.append(line_no)
        if missing:
            raise DatasetNotFoundError(
                f"{self.cls_label_path} lists {len(missing)} of {len(images)} files that do not exist "
                f"under image_root '{self.image_root}', e.g. {missing[:5]}. Check image_root (paths in "
                f"the list are relative to it) or regenerate the list.")
        if not images:
            raise DataError(f"{self.cls_label_path} lists no images", exit_code=2)
        return images, labels, line_numbers

    @property
    def class_num(self):
        return max(self.labels) + 1

    def label_range_problem(self, class_num):
        """None when every label is in 0..class_num-1, else what is wrong, naming the list file
        and line of the first label outside."""
        for label, line_no in zip(self.labels, self.line_numbers):
            if not 0 <= label < class_num:
                return (f"{self.cls_label_path}:{line_no}: label {label} is out of range: labels must "
                        f"be 0..{class_num - 1} (Arch.class_num is {class_num}). Fix the list or set "
                        f"Arch.class_num.")
        return None

    def __len__(self):
        return len(self.images)

    def load(self, idx):
        """``(CHW image, label)``; raises what reading or transforming the file raises."""
        with open(self.images[idx], "rb") as f:
            img = f.read()
        img = apply_transforms(img, self.ops)
        if img.ndim == 3 and not is_chw(img):
            img = img.transpose((2, 0, 1))  # HWC -> CHW as PaddleClas' dataset does
        return np.ascontiguousarray(img), np.int64(self.labels[idx])

    def __getitem__(self, idx):
        # An exception here would hang Paddle's single-process loader (its reader thread dies
        # and the queue waits forever) or kill a worker without naming the file, so a failed
        # sample travels to the main process as a marker and is raised there (see
        # data.CheckedLoader and read_error).
        try:
            return self.load(idx)
        except Exception:
            return None, np.int64(idx)

    def read_error(self, idx):
        """The DataError for sample ``idx`` that failed in the loader: reads it again here for
        the reason, names the file and its line in the list."""
        try:
            self.load(idx)
            reason = "it failed in a DataLoader worker but reads here (a transient I/O error?)"
        except Exception as err:
            reason = " ".join(str(err).split()) or type(err).__name__
        return DataError(f"cannot read image {self.images[idx]} ({self.cls_label_path}:"
                         f"{self.line_numbers[idx]}): {reason}. Fix or replace the file, or remove "
                         f"its line from the list.")


class DigitsDataset(ImageNetDataset):
    """ImageNetDataset over scikit-learn's digits, written as an ImageNet-layout folder at
    ``image_root`` on first use (kept for older configs: ``ImageNetDataset`` with an
    ``image_root`` named ``digits`` does the same and also runs in PaddleClas's engine)."""

    def __init__(self, image_root="./dataset/digits/", cls_label_path=None, transform_ops=None,
                 delimiter=None, relabel=False):
        from .digits import materialize_digits
        materialize_digits(image_root)
        cls_label_path = cls_label_path or os.path.join(image_root, "train_list.txt")
        super().__init__(image_root, cls_label_path, transform_ops, delimiter, relabel)


class MultiScaleDataset(ImageNetDataset):
    """ImageNetDataset indexed by ``(width, height, index)`` from :class:`MultiScaleSampler`:
    every RandCropImage / ResizeImage / CropImage op produces that size (PaddleClas's rule; the
    config needs one of them)."""

    RESIZING_OPS = ("RandCropImage", "ResizeImage", "CropImage")

    def __init__(self, image_root, cls_label_path, transform_ops=None, delimiter=None):
        super().__init__(image_root, cls_label_path, None, delimiter)
        self.op_cfgs = [dict(item) for item in (transform_ops or [])]
        if not any(next(iter(item)) in self.RESIZING_OPS for item in self.op_cfgs):
            raise ValueError("MultiScaleDataset needs a RandCropImage, ResizeImage or CropImage op "
                             "in transform_ops (it sets their output size per batch)")
        self._ops_by_size = {}

    def _ops_for(self, width, height):
        key = (width, height)
        if key not in self._ops_by_size:
            cfgs = [{name: ({"size": [width, height]} if name in self.RESIZING_OPS else kwargs)}
                    for item in self.op_cfgs for name, kwargs in item.items()]
            self._ops_by_size[key] = build_transforms(cfgs)
        return self._ops_by_size[key]

    def __getitem__(self, item):
        width, height, idx = item if isinstance(item, (tuple, list)) else (None, None, item)
        if width is None:
            raise TypeError("MultiScaleDataset is indexed by (width, height, index): use it with "
                            "sampler name MultiScaleSampler")
        self.ops = self._ops_for(int(width), int(height))
        return super().__getitem__(idx)


DATASETS = {"ImageNetDataset": ImageNetDataset, "DigitsDataset": DigitsDataset,
            "MultiScaleDataset": MultiScaleDataset}
