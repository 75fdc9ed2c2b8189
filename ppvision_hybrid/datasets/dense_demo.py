"""A tiny, deterministic, real-format demo set for detection and segmentation (no download).

``make_dense_demo(root)`` writes::

    root/det/images/demo_000.png ...              RGB images
    root/det/annotations/instances_train.json     COCO instances: boxes, polygons, areas
    root/det/annotations/instances_val.json       (same images: the demo checks the pipeline)
    root/seg/images/demo_000.png ...
    root/seg/labels/demo_000.png ...              uint8 label maps (0 background, 255 ignore)
    root/seg/train.txt, root/seg/val.txt          "images/x.png labels/x.png" per line

Two object classes, as in the toolkits' tiny smoke sets: ``rectangle`` (axis-aligned, one
colour family) and ``ellipse`` (another colour family), on a smooth noisy background. The same
generator and seed always give byte-identical files.

CLI: ``python -m ppvision_hybrid.datasets.dense_demo --out output/dense_demo``
"""
import argparse
import json
import os

import cv2
import numpy as np

__all__ = ["CLASSES", "make_dense_demo"]

CLASSES = ("rectangle", "ellipse")


def _background(rng, h, w):
    low = rng.uniform(60, 140, size=(h // 16 + 2, w // 16 + 2, 3)).astype(np.float32)
    smooth = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(smooth + rng.normal(0, 6, size=(h, w, 3)), 0, 255)


def _objects(rng, h, w, count):
    """Non-overlapping boxes (x, y, bw, bh) with a class each."""
    placed = []
    for _ in range(100):
        if len(placed) == count:
            break
        bw, bh = int(rng.integers(w // 6, w // 2.5)), int(rng.integers(h // 6, h // 2.5))
        x, y = int(rng.integers(2, w - bw - 2)), int(rng.integers(2, h - bh - 2))
        if all(x + bw + 4 < px or px + pw + 4 < x or y + bh + 4 < py or py + ph + 4 < y
               for px, py, pw, ph, _ in placed):
            placed.append((x, y, bw, bh, int(rng.integers(0, len(CLASSES)))))
    return placed


def _polygon(x, y, bw, bh, cls):
    if cls == 0:
        return np.array([[x, y], [x + bw, y], [x + bw, y + bh], [x, y + bh]], np.float64)
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    return np.stack([x + bw / 2 + bw / 2 * np.cos(t), y + bh / 2 + bh / 2 * np.sin(t)], 1)


def make_dense_demo(root, num_images=8, height=192, width=256, seed=0, num_val=None):
    """Write the demo set under ``root`` and return a dict of its paths. The validation split
    is the first ``num_val`` training images (all by default)."""
    rng = np.random.default_rng(seed)
    det_img = os.path.join(root, "det", "images")
    det_ann = os.path.join(root, "det", "annotations")
    seg_img = os.path.join(root, "seg", "images")
    seg_lbl = os.path.join(root, "seg", "labels")
    for d in (det_img, det_ann, seg_img, seg_lbl):
        os.makedirs(d, exist_ok=True)
    images, annotations, lines = [], [], []
    for i in range(num_images):
        name = f"demo_{i:03d}.png"
        img = _background(rng, height, width)
        label = np.zeros((height, width), np.uint8)
        for x, y, bw, bh, cls in _objects(rng, height, width, int(rng.integers(1, 4))):
            poly = _polygon(x, y, bw, bh, cls)
            colour = (rng.uniform(180, 250), rng.uniform(20, 80), rng.uniform(20, 80)) if cls == 0 \
                else (rng.uniform(20, 80), rng.uniform(20, 80), rng.uniform(180, 250))
            mask = np.zeros((height, width), np.uint8)
            cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
            img[mask > 0] = colour
            label[mask > 0] = cls + 1
            # a 1-pixel ignore band on object borders, as ADE20K-style maps have
            edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
            label[edge > 0] = 255
            x0, y0 = poly.min(0)
            x1, y1 = poly.max(0)
            annotations.append(dict(
                id=len(annotations) + 1, image_id=i + 1, category_id=cls + 1, iscrowd=0,
                bbox=[round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2),
                      round(float(y1 - y0), 2)],
                area=float(mask.sum()),
                segmentation=[[round(float(v), 2) for v in poly.reshape(-1)]]))
        rgb = np.clip(img, 0, 255).astype(np.uint8)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        for d in (det_img, seg_img):
            cv2.imwrite(os.path.join(d, name), bgr)
        cv2.imwrite(os.path.join(seg_lbl, name), label)
        images.append(dict(id=i + 1, file_name=name, height=height, width=width))
        lines.append(f"images/{name} labels/{name}")
    coco = dict(images=images, annotations=annotations,
                categories=[dict(id=k + 1, name=n, supercategory="shape") for k, n in enumerate(CLASSES)])
    num_val = num_images if num_val is None else int(num_val)
    val_ids = {im["id"] for im in images[:num_val]}
    val = dict(coco, images=images[:num_val],
               annotations=[a for a in annotations if a["image_id"] in val_ids])
    for split, data, split_lines in (("train", coco, lines), ("val", val, lines[:num_val])):
        with open(os.path.join(det_ann, f"instances_{split}.json"), "w") as f:
            json.dump(data, f)
        with open(os.path.join(root, "seg", f"{split}.txt"), "w") as f:
            f.write("\n".join(split_lines) + "\n")
    return dict(root=root, det_root=os.path.join(root, "det"), seg_root=os.path.join(root, "seg"),
                num_images=num_images, num_annotations=len(annotations))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="output/dense_demo")
    ap.add_argument("--num-images", type=int, default=8)
    args = ap.parse_args(argv)
    info = make_dense_demo(args.out, num_images=args.num_images)
    print(f"wrote {info['num_images']} images, {info['num_annotations']} objects under {args.out}")


if __name__ == "__main__":
    main()
