"""scikit-learn's ``load_digits`` (1,797 real 8x8 handwritten digits, shipped inside
scikit-learn, no download) written as an ImageNet-layout folder:

    <root>/images/train/<index>.png, <root>/images/val/<index>.png
    <root>/train_list.txt, <root>/val_list.txt    ("images/train/00001.png 3")
    <root>/label_list.txt                          ("3 three", the Infer class_id_map_file)

A fixed stratified 80/20 split (1,438 train / 359 val). Written into a temporary folder and
renamed into place, so concurrent processes (a distributed launch) never see half a dataset.

Command line: ``python -m ppvision_hybrid.data.digits [--root ./dataset/digits]``.
"""
import argparse
import os
import shutil
import tempfile

import cv2
import numpy as np

__all__ = ["materialize_digits", "DIGIT_NAMES"]

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_MARKER = "label_list.txt"  # written last: its presence means the folder is complete


def _split(labels, val_fraction=0.2, seed=0):
    rng = np.random.RandomState(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        val.extend(idx[:n_val].tolist())
        train.extend(idx[n_val:].tolist())
    return sorted(train), sorted(val)


def materialize_digits(root="./dataset/digits", verbose=True):
    """Create the folder if it is not complete yet; return ``root``."""
    if os.path.isfile(os.path.join(root, _MARKER)):
        return root
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = np.clip(np.round(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    train, val = _split(labels)
    parent = os.path.dirname(os.path.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".digits_tmp_", dir=parent)
    try:
        for split, indices in (("train", train), ("val", val)):
            os.makedirs(os.path.join(tmp, "images", split))
            lines = []
            for i in indices:
                rel = f"images/{split}/{i:05d}.png"
                # 3 identical channels so the ImageNet pipeline (RGB) applies unchanged
                cv2.imwrite(os.path.join(tmp, rel), cv2.cvtColor(images[i], cv2.COLOR_GRAY2BGR))
                lines.append(f"{rel} {labels[i]}\n")
            with open(os.path.join(tmp, f"{split}_list.txt"), "w") as f:
                f.writelines(lines)
        with open(os.path.join(tmp, _MARKER), "w") as f:
            f.writelines(f"{i} {name}\n" for i, name in enumerate(DIGIT_NAMES))
        if os.path.isdir(root) and not os.listdir(root):
            os.rmdir(root)
        try:
            os.rename(tmp, root)
        except OSError:
            if not os.path.isfile(os.path.join(root, _MARKER)):  # not another process's copy
                raise
        else:
            tmp = None
            if verbose:
                print(f"[ppvision_hybrid] wrote the digits dataset to {root} "
                      f"({len(train)} train / {len(val)} val images, 8x8, 10 classes)")
    finally:
        if tmp and os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return root


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="./dataset/digits")
    print(materialize_digits(parser.parse_args().root))
