"""Classify images with an exported model through Paddle Inference (PaddleClas-style deploy).

    python deploy/python/predict_cls.py -c deploy/configs/inference_cls.yaml \\
        -o Global.inference_model_dir=output/TransXNet_T -o Global.infer_imgs=demo.jpg
    python deploy/python/predict_cls.py -c deploy/configs/inference_cls.yaml \\
        --model_dir output/TransXNet_T --infer_imgs ./images --batch_size 8 --cpu_threads 2 --benchmark

Preprocessing ops come from the YAML (``PreProcess.transform_ops``), the result is a top-k
list with label names (``PostProcess.Topk``). Needs only paddle, numpy, opencv and PyYAML plus
the exported files: the model code is never imported.
"""
import zlib  # noqa: F401  -- before paddle: Paddle 2.6 crashes later zlib compression otherwise
import argparse
import glob
import importlib.util
import os
import sys
import time

import cv2
import numpy as np
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def _load_inference_module():
    """ppvision_hybrid/inference.py by file path, so the package (and its models) is not imported."""
    path = os.path.join(ROOT, "ppvision_hybrid", "inference.py")
    if os.path.isfile(path):
        spec = importlib.util.spec_from_file_location("ppvh_inference", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    import ppvision_hybrid.inference as module  # installed package without the source tree
    return module


# ---- configuration ------------------------------------------------------------------------
def load_config(path, overrides=()):
    with open(path) as f:
        config = yaml.safe_load(f) or {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override '{item}' must look like Section.key=value")
        key, value = item.split("=", 1)
        node = config
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    return config


def _number(value):
    """YAML numbers, including PaddleClas's '1.0/255.0' strings."""
    if isinstance(value, str) and "/" in value:
        num, den = value.split("/", 1)
        return float(num) / float(den)
    return float(value)


# ---- preprocessing ops (PaddleClas names and arguments) -------------------------------------
_INTERPOLATION = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR,
                  "bicubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}


class DecodeImage:
    """File bytes -> HWC uint8 (RGB when ``to_rgb``)."""

    def __init__(self, to_rgb=True, channel_first=False):
        self.to_rgb, self.channel_first = to_rgb, channel_first

    def __call__(self, data):
        if isinstance(data, np.ndarray) and data.ndim == 3:
            img = data
        else:
            img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError("could not decode image")
            if self.to_rgb:
                img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return img.transpose(2, 0, 1) if self.channel_first else img


class ResizeImage:
    """Resize the short side to ``resize_short`` (aspect kept) or to a fixed ``size``."""

    def __init__(self, size=None, resize_short=None, interpolation="bilinear", backend="cv2"):
        if (size is None) == (resize_short is None):
            raise ValueError("ResizeImage needs exactly one of size / resize_short")
        self.size = (size, size) if isinstance(size, int) else size
        self.resize_short = resize_short
        self.interpolation = _INTERPOLATION[interpolation or "bilinear"]

    def __call__(self, img):
        h, w = img.shape[:2]
        if self.resize_short is not None:
            scale = self.resize_short / min(h, w)
            new_w, new_h = int(round(w * scale)), int(round(h * scale))
        else:
            new_w, new_h = self.size[0], self.size[1]
        return cv2.resize(img, (new_w, new_h), interpolation=self.interpolation)


class CropImage:
    """Center crop to ``size`` (int or [w, h])."""

    def __init__(self, size):
        self.w, self.h = (size, size) if isinstance(size, int) else size

    def __call__(self, img):
        h, w = img.shape[:2]
        if h < self.h or w < self.w:
            raise ValueError(f"image {w}x{h} is smaller than the crop {self.w}x{self.h}")
        top, left = (h - self.h) // 2, (w - self.w) // 2
        return img[top:top + self.h, left:left + self.w]


class NormalizeImage:
    """``(img * scale - mean) / std`` as float32; ``order='chw'`` for CHW input."""

    def __init__(self, scale=1 / 255.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                 order="", channel_num=3, output_fp16=False):
        self.scale = np.float32(_number(scale))
        shape = (3, 1, 1) if order == "chw" else (1, 1, 3)
        self.mean = np.array(mean, dtype=np.float32).reshape(shape)
        self.std = np.array(std, dtype=np.float32).reshape(shape)
        self.channel_num = channel_num

    def __call__(self, img):
        return (img.astype(np.float32) * self.scale - self.mean) / self.std


class ToCHWImage:
    def __call__(self, img):
        return img.transpose(2, 0, 1)


_OPS = {cls.__name__: cls for cls in (DecodeImage, ResizeImage, CropImage, NormalizeImage, ToCHWImage)}


def build_transforms(op_list):
    """``[{OpName: {args}}, ...]`` -> list of callables; DecodeImage is added when missing."""
    ops = []
    for entry in op_list or []:
        (name, kwargs), = entry.items()
        if name not in _OPS:
            raise ValueError(f"unknown preprocessing op '{name}' (known: {sorted(_OPS)})")
        ops.append(_OPS[name](**(kwargs or {})))
    if not ops or not isinstance(ops[0], DecodeImage):
        ops.insert(0, DecodeImage(to_rgb=True, channel_first=False))
    return ops


def preprocess(path, ops):
    with open(path, "rb") as f:
        data = f.read()
    for op in ops:
        data = op(data)
    return data


# ---- postprocessing -------------------------------------------------------------------------
class Topk:
    """Top-k class ids, scores and label names (``class_id_map_file``: "id name" per line)."""

    def __init__(self, topk=5, class_id_map_file=None, base_dir=None):
        self.topk = int(topk)
        self.labels = None
        if class_id_map_file:
            path = class_id_map_file
            if not os.path.isabs(path) and not os.path.exists(path) and base_dir:
                path = os.path.join(base_dir, path)
            if not os.path.exists(path):
                print(f"[predict_cls] class_id_map_file {class_id_map_file} not found: "
                      f"printing class ids only", file=sys.stderr)
            else:
                self.labels = {}
                with open(path, encoding="utf-8") as f:
                    for line in f:
                        parts = line.strip().split(maxsplit=1)
                        if parts:
                            self.labels[int(parts[0])] = parts[1] if len(parts) > 1 else parts[0]

    @staticmethod
    def _probabilities(scores):
        # Exports may or may not end with a softmax: apply one unless rows already are
        # probability distributions.
        if scores.min() >= 0 and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
            return scores
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def __call__(self, scores, paths):
        probs = self._probabilities(np.asarray(scores, dtype=np.float64))
        k = min(self.topk, probs.shape[1])
        results = []
        for row, path in zip(probs, paths):
            ids = np.argsort(-row, kind="stable")[:k]
            result = {"file_name": path, "class_ids": ids.tolist(),
                      "scores": [round(float(row[i]), 5) for i in ids]}
            if self.labels is not None:
                result["label_names"] = [self.labels.get(int(i), "") for i in ids]
            results.append(result)
        return results


# ---- inputs ---------------------------------------------------------------------------------
def list_images(source):
    """An image file, a folder (recursive) or a .txt list ("path [label]" per line)."""
    if os.path.isdir(source):
        paths = [p for p in glob.glob(os.path.join(source, "**", "*"), recursive=True)
                 if p.lower().endswith(IMAGE_EXTENSIONS)]
    elif source.lower().endswith(".txt"):
        base = os.path.dirname(source)
        with open(source) as f:
            paths = [os.path.join(base, line.split()[0]) for line in f if line.strip()]
    elif os.path.isfile(source):
        paths = [source]
    else:
        raise FileNotFoundError(f"no image, folder or list at '{source}'")
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under '{source}'")
    return sorted(paths)


def _shape(value):
    if value is None or isinstance(value, (list, tuple)):
        return value
    return [int(v) for v in str(value).lower().split("x")]


# ---- main -----------------------------------------------------------------------------------
class ClsPredictor:
    def __init__(self, config):
        inference = _load_inference_module()
        g = config["Global"]
        self.inference = inference
        dynamic_shape = None
        if g.get("use_tensorrt") and g.get("trt_min_shape") is not None:
            dynamic_shape = (_shape(g["trt_min_shape"]), _shape(g.get("trt_opt_shape") or g["trt_min_shape"]),
                             _shape(g.get("trt_max_shape") or g["trt_min_shape"]))
        self.predictor = inference.create_predictor(
            g["inference_model_dir"], use_gpu=bool(g.get("use_gpu", False)), gpu_id=int(g.get("gpu_id", 0)),
            gpu_mem_mb=int(g.get("gpu_mem", 1000)), enable_mkldnn=bool(g.get("enable_mkldnn", True)),
            cpu_threads=int(g.get("cpu_num_threads", 1)), use_tensorrt=bool(g.get("use_tensorrt", False)),
            precision="fp16" if g.get("use_fp16") else "fp32",
            min_subgraph_size=int(g.get("min_subgraph_size", 3)),
            max_batch_size=int(g.get("batch_size", 1)), dynamic_shape=dynamic_shape,
            ir_optim=bool(g.get("ir_optim", True)), pin_threads=bool(g.get("pin_cpu_threads", False)),
            keep_intermediates=bool(g.get("keep_intermediates", False)))
        self.ops = build_transforms(config.get("PreProcess", {}).get("transform_ops"))
        topk_cfg = dict(config.get("PostProcess", {}).get("Topk", {}) or {})
        self.postprocess = Topk(base_dir=ROOT, **topk_cfg)
        self.batch_size = int(g.get("batch_size", 1))

    def predict_paths(self, paths, timings=None):
        results = []
        for start in range(0, len(paths), self.batch_size):
            chunk = paths[start:start + self.batch_size]
            t0 = time.perf_counter()
            batch = np.stack([preprocess(p, self.ops) for p in chunk]).astype(np.float32)
            t1 = time.perf_counter()
            scores = self.predictor(batch)
            t2 = time.perf_counter()
            if isinstance(scores, list):
                scores = scores[0]
            results.extend(self.postprocess(scores, chunk))
            if timings is not None:
                timings["preprocess"].append((t1 - t0) * 1e3)
                timings["inference"].append((t2 - t1) * 1e3)
                timings["batch_sizes"].append(len(chunk))
        return results


def benchmark(cls_predictor, paths, warmup, repeats):
    """Latency percentiles (per batch) and throughput over ``repeats`` passes on the inputs."""
    batch = np.stack([preprocess(p, cls_predictor.ops)
                      for p in paths[:cls_predictor.batch_size]]).astype(np.float32)
    times = cls_predictor.inference.time_predictor(cls_predictor.predictor, batch, warmup=warmup,
                                                   repeats=repeats)
    times = np.array(times)
    n = batch.shape[0]
    stats = {"batch_size": n, "runs": len(times),
             "p50_ms": float(np.percentile(times, 50)), "p90_ms": float(np.percentile(times, 90)),
             "p99_ms": float(np.percentile(times, 99)), "mean_ms": float(times.mean()),
             "min_ms": float(times.min()), "throughput_img_s": float(n * 1e3 / times.mean())}
    return stats


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Paddle Inference image classification")
    parser.add_argument("-c", "--config", default=os.path.join(ROOT, "deploy", "configs", "inference_cls.yaml"))
    parser.add_argument("-o", "--override", action="append", default=[],
                        help="Section.key=value (repeatable), e.g. -o Global.batch_size=4")
    parser.add_argument("--model_dir", help="= Global.inference_model_dir")
    parser.add_argument("--infer_imgs", help="= Global.infer_imgs: image, folder or .txt list")
    parser.add_argument("--batch_size", type=int)
    bool_flag = dict(type=lambda s: str(s).lower() in ("1", "true", "yes", "on"), nargs="?", const=True)
    parser.add_argument("--enable_mkldnn", **bool_flag, help="oneDNN on CPU (True/False)")
    parser.add_argument("--cpu_threads", type=int, help="= Global.cpu_num_threads")
    parser.add_argument("--pin_cpu_threads", **bool_flag,
                        help="= Global.pin_cpu_threads: KMP_AFFINITY thread i on core i (unless set)")
    parser.add_argument("--keep_intermediates", **bool_flag,
                        help="= Global.keep_intermediates: intermediate tensors stay allocated between calls "
                             "(lower latency, more memory)")
    parser.add_argument("--use_gpu", **bool_flag)
    parser.add_argument("--gpu_id", type=int)
    parser.add_argument("--use_tensorrt", **bool_flag)
    parser.add_argument("--precision", choices=["fp32", "fp16"], help="TensorRT/GPU precision")
    parser.add_argument("--trt_min_shape", help="NxCxHxW, TensorRT dynamic shape minimum")
    parser.add_argument("--trt_opt_shape", help="NxCxHxW, TensorRT optimisation shape")
    parser.add_argument("--trt_max_shape", help="NxCxHxW, TensorRT dynamic shape maximum")
    parser.add_argument("--topk", type=int)
    parser.add_argument("--class_id_map_file")
    parser.add_argument("--benchmark", **bool_flag, help="print latency percentiles and throughput")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    return parser.parse_args(argv)


def build_config(args):
    config = load_config(args.config, args.override)
    g = config.setdefault("Global", {})
    mapping = {"model_dir": "inference_model_dir", "infer_imgs": "infer_imgs", "batch_size": "batch_size",
               "enable_mkldnn": "enable_mkldnn", "cpu_threads": "cpu_num_threads", "use_gpu": "use_gpu",
               "pin_cpu_threads": "pin_cpu_threads", "keep_intermediates": "keep_intermediates",
               "gpu_id": "gpu_id", "use_tensorrt": "use_tensorrt", "trt_min_shape": "trt_min_shape",
               "trt_opt_shape": "trt_opt_shape", "trt_max_shape": "trt_max_shape", "benchmark": "benchmark"}
    for arg, key in mapping.items():
        value = getattr(args, arg)
        if value is not None:
            g[key] = value
    if args.precision is not None:
        g["use_fp16"] = args.precision == "fp16"
    topk = config.setdefault("PostProcess", {}).setdefault("Topk", {})
    if args.topk is not None:
        topk["topk"] = args.topk
    if args.class_id_map_file is not None:
        topk["class_id_map_file"] = args.class_id_map_file
    return config


def main(argv=None):
    args = parse_args(argv)
    config = build_config(args)
    predictor = ClsPredictor(config)
    paths = list_images(config["Global"]["infer_imgs"])
    timings = {"preprocess": [], "inference": [], "batch_sizes": []}
    for result in predictor.predict_paths(paths, timings):
        line = f"{result['file_name']}:\tclass id(s): {result['class_ids']}, score(s): {result['scores']}"
        if "label_names" in result:
            line += f", label_name(s): {result['label_names']}"
        print(line)
    if config["Global"].get("benchmark"):
        stats = benchmark(predictor, paths, args.warmup, args.repeats)
        g = config["Global"]
        device = "GPU" + (" TensorRT" if g.get("use_tensorrt") else "") if g.get("use_gpu") else \
            f"CPU ({'oneDNN' if g.get('enable_mkldnn', True) else 'no oneDNN'}, {g.get('cpu_num_threads', 1)} threads)"
        print(f"[benchmark] {device}, batch {stats['batch_size']}, {stats['runs']} runs: "
              f"latency p50 {stats['p50_ms']:.2f} ms, p90 {stats['p90_ms']:.2f} ms, p99 {stats['p99_ms']:.2f} ms, "
              f"mean {stats['mean_ms']:.2f} ms; throughput {stats['throughput_img_s']:.2f} images/s; "
              f"preprocess {np.mean(timings['preprocess']):.2f} ms/batch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
