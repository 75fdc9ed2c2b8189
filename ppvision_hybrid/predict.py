"""Classify images with an exported model (PaddleClas's ``deploy/python/predict_cls.py`` contract):
``ppvh-predict-cls`` or, in a checkout, ``python deploy/python/predict_cls.py`` (a wrapper of :func:`main`).

    python deploy/python/predict_cls.py -c deploy/configs/inference_cls.yaml \\
        -o Global.inference_model_dir=output/TransXNet_T -o Global.infer_imgs=demo.jpg
    python deploy/python/predict_cls.py -c deploy/configs/inference_cls.yaml \\
        --model_dir output/TransXNet_T --infer_imgs ./images --batch_size 8 --cpu_threads 2 --benchmark

Reads PaddleClas's own ``deploy/configs/inference_cls.yaml`` unchanged; ``-o`` overrides take
dotted paths with list indices (``-o PreProcess.transform_ops.0.ResizeImage.resize_short=384``);
an unknown key is an error that names the nearest accepted one.

* ``Global.use_onnx: True`` runs ``<inference_model_dir>/inference.onnx`` in ONNX Runtime
  (write it with ``tools/export_onnx.py --model_dir DIR --save_file DIR/inference.onnx``).
* ``Global.benchmark: True`` prints PaddleClas's benchmark report (the auto_log fields: run
  config, model, data and per-stage times) and writes it to ``Global.save_log_path``
  (default ``./auto_log.log``); without benchmark, ``save_log_path`` receives the predictions.
* ``Global.use_int8`` needs an int8 export (``inference_int8.pdiparams``) and
  ``Global.use_tensorrt`` a CUDA build with a GPU: otherwise they are refused with the reason.
* When the model folder has an ``inference.yml`` (written by tools/export_model.py), its
  pre-processing is used if the config has no ``PreProcess``, and its ``label_list`` names the
  classes if ``PostProcess.Topk.class_id_map_file`` is not given; a config whose crop differs
  from the exported model's is reported.

Needs only paddle (or onnxruntime), numpy, opencv and PyYAML plus the exported files: this module
imports the package's model-free modules only (inference, cli_errors, preprocess, timing), never
the model code (models/, layers/, registry, flops).
"""
import argparse
import difflib
import glob
import inspect
import os
import platform
import resource
import shutil
import sys
import time

import cv2
import numpy as np
import yaml

from . import cli_errors, inference
from .preprocess import DecodeImage, EVAL_OPS
from .preprocess import build_transforms as build_eval_ops
from .preprocess import read_and_transform as preprocess

__all__ = ["main", "ClsPredictor", "ConfigError", "Topk", "SavePreLabel", "OnnxPredictor", "build_config",
           "build_transforms", "load_config", "validate_config", "apply_overrides", "list_images",
           "merge_model_yml", "load_model_yml", "preprocess", "benchmark", "benchmark_report", "parse_args"]

#: the source checkout holding this package, when there is one (its deploy/configs is the default
#: predictor config and the base for relative class_id_map_file paths)
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
DEFAULT_CONFIG = os.path.join(SOURCE_ROOT, "deploy", "configs", "inference_cls.yaml")


# ---- configuration ------------------------------------------------------------------------
class ConfigError(ValueError):
    """A predictor config key or value this predictor does not accept."""

    is_user_error = True  # one line and exit status 2 (cli_errors.main_guard)


#: accepted keys: PaddleClas's predictor keys plus this predictor's own (CPU pinning, kept
#: intermediates, TensorRT shape ranges)
GLOBAL_KEYS = ("infer_imgs", "inference_model_dir", "batch_size", "use_gpu", "gpu_id", "gpu_mem",
               "enable_mkldnn", "cpu_num_threads", "use_fp16", "use_int8", "ir_optim",
               "use_tensorrt", "min_subgraph_size", "trt_min_shape", "trt_opt_shape",
               "trt_max_shape", "enable_profile", "benchmark", "enable_benchmark",
               "save_log_path", "use_onnx", "model_name", "pin_cpu_threads", "keep_intermediates")
REFUSED_GLOBAL = {"use_xpu": "Kunlun XPU", "use_npu": "Ascend NPU", "use_mlu": "Cambricon MLU"}
#: the keyword arguments each evaluation op takes
OP_KEYS = {name: tuple(inspect.signature(cls).parameters) for name, cls in EVAL_OPS.items()}
POSTPROCESS_KEYS = {"Topk": ("topk", "class_id_map_file", "delimiter", "label_list"),
                    "SavePreLabel": ("save_dir",)}


def _parse_value(text):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _nearest(key, accepted):
    close = difflib.get_close_matches(str(key), [str(a) for a in accepted], n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def apply_overrides(config, overrides):
    """PaddleClas ``-o`` semantics: a dotted path whose integer parts index lists."""
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like Section.key=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = config
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[:i + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"override '{key}': '{where}' needs a list index below {len(node)}")
                if last:
                    node[int(part)] = _parse_value(value)
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = _parse_value(value)
                else:
                    if node.get(part) is None:
                        node[part] = {}
                    node = node[part]
            else:
                raise ConfigError(f"override '{key}': '{'.'.join(parts[:i])}' is a value, not a section")
    return config


def _read_yaml(path):
    with open(path, encoding="utf-8") as f:
        try:
            return yaml.safe_load(f) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None


def load_config(path, overrides=()):
    return apply_overrides(_read_yaml(path), overrides)


def _check_keys(mapping, where, accepted, refused=None):
    if mapping is None:
        return
    if not isinstance(mapping, dict):
        raise ConfigError(f"'{where}' must be a mapping, got {mapping!r}")
    for key in mapping:
        if refused and key in refused:
            if mapping[key]:
                raise ConfigError(f"{where}.{key}: {refused[key]} devices are not supported by this "
                                  f"predictor (CPU, GPU and ONNX Runtime are)")
            continue
        if key not in accepted:
            path = f"{where}.{key}" if where else str(key)
            raise ConfigError(f"unknown config key '{path}'.{_nearest(key, accepted)} Accepted keys"
                              f"{' in ' + where if where else ''}: {', '.join(accepted)}")


def validate_config(config):
    """Raise :class:`ConfigError` on the first key this predictor does not know."""
    _check_keys(config, "", ("Global", "PreProcess", "PostProcess"))
    _check_keys(config.get("Global"), "Global", GLOBAL_KEYS, REFUSED_GLOBAL)
    _check_keys(config.get("PreProcess"), "PreProcess", ("transform_ops",))
    for i, entry in enumerate((config.get("PreProcess") or {}).get("transform_ops") or []):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ConfigError(f"PreProcess.transform_ops[{i}] must be {{OpName: {{args}}}}, got {entry!r}")
        (name, kwargs), = entry.items()
        if name not in OP_KEYS:
            raise ConfigError(f"unknown op 'PreProcess.transform_ops[{i}].{name}'.{_nearest(name, OP_KEYS)} "
                              f"Accepted: {', '.join(OP_KEYS)}")
        _check_keys(kwargs, f"PreProcess.transform_ops[{i}].{name}", OP_KEYS[name])
    post = config.get("PostProcess") or {}
    _check_keys(post, "PostProcess", ("main_indicator",) + tuple(POSTPROCESS_KEYS))
    for name, keys in POSTPROCESS_KEYS.items():
        _check_keys(post.get(name), f"PostProcess.{name}", keys)
    return config


# ---- inference.yml beside the model --------------------------------------------------------
def load_model_yml(model_dir):
    """The ``inference.yml`` an export wrote beside the model, or None."""
    if not model_dir:
        return None
    folder = model_dir if os.path.isdir(model_dir) else os.path.dirname(model_dir)
    path = os.path.join(folder, "inference.yml")
    if not os.path.isfile(path):
        return None
    return _read_yaml(path)


def _crop_size(ops):
    for op in ops or []:
        (name, kwargs), = op.items()
        if name == "CropImage":
            return kwargs.get("size")
        if name == "ResizeImage" and (kwargs or {}).get("size") is not None:
            return kwargs["size"]
    return None


def merge_model_yml(config, model_yml, explicit_preprocess, explicit_topk=True):
    """Fill what the user's config leaves open from the export's ``inference.yml`` (its
    pre-processing, top-k and class names); returns notes."""
    notes = []
    if not model_yml:
        return notes
    yml_ops = (model_yml.get("PreProcess") or {}).get("transform_ops")
    cfg_ops = (config.get("PreProcess") or {}).get("transform_ops")
    if yml_ops and not explicit_preprocess:
        config["PreProcess"] = {"transform_ops": yml_ops}
        notes.append("pre-processing from the model's inference.yml")
    elif yml_ops and _crop_size(cfg_ops) != _crop_size(yml_ops):
        notes.append(f"PreProcess crops/resizes to {_crop_size(cfg_ops)} but the model was exported "
                     f"with {_crop_size(yml_ops)} (its inference.yml); results may be off")
    yml_topk = (model_yml.get("PostProcess") or {}).get("Topk") or {}
    topk = config.setdefault("PostProcess", {}).setdefault("Topk", {})
    if yml_topk.get("label_list") and not topk.get("class_id_map_file") and not topk.get("label_list"):
        topk["label_list"] = yml_topk["label_list"]
    if yml_topk.get("topk") and not explicit_topk:
        topk["topk"] = yml_topk["topk"]
    model_name = (model_yml.get("Global") or {}).get("model_name")
    if model_name:
        config.setdefault("Global", {}).setdefault("model_name", model_name)
    return notes


# ---- preprocessing (ppvision_hybrid.preprocess: the engine's evaluation ops) ----------------
def build_transforms(op_list):
    """``[{OpName: {args}}, ...]`` -> list of callables; DecodeImage is added when missing (the
    image is then read as RGB, as PaddleClas's predictor does)."""
    ops = build_eval_ops(op_list)
    if not ops or not isinstance(ops[0], DecodeImage):
        ops.insert(0, DecodeImage(to_rgb=True, channel_first=False))
    return ops


# ---- postprocessing -------------------------------------------------------------------------
class Topk:
    """Top-k class ids, scores and label names (``class_id_map_file``: "id name" per line, split
    at ``delimiter``; or ``label_list``, the names in class order)."""

    def __init__(self, topk=5, class_id_map_file=None, base_dir=None, delimiter=None, label_list=None):
        self.topk = int(topk)
        self.labels = dict(enumerate(label_list)) if label_list else None
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
                    for line_no, line in enumerate(f, 1):
                        parts = line.strip().split(delimiter or None, 1)
                        if not parts or not parts[0]:
                            continue
                        if not parts[0].lstrip("-").isdigit():
                            raise ConfigError(f"PostProcess.Topk.class_id_map_file {path}:{line_no}: "
                                              f"expected 'class_id name', got {line.strip()!r}")
                        self.labels[int(parts[0])] = parts[1].strip() if len(parts) > 1 else parts[0]

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


class SavePreLabel:
    """Copy each image into ``save_dir/<top-1 class id>/`` (PaddleClas's pre-labelling step)."""

    def __init__(self, save_dir=None):
        if not save_dir:
            raise ConfigError("PostProcess.SavePreLabel needs save_dir")
        self.save_dir = save_dir

    def __call__(self, results):
        for result in results:
            folder = os.path.join(self.save_dir, str(result["class_ids"][0]))
            os.makedirs(folder, exist_ok=True)
            shutil.copy(result["file_name"], folder)


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


# ---- backends -------------------------------------------------------------------------------
class OnnxPredictor:
    """ONNX Runtime on ``inference.onnx`` (CPU), with PaddleClas's session options."""

    def __init__(self, model_dir, cpu_threads=1, ir_optim=True):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError("Global.use_onnx: onnxruntime is not installed "
                              "(pip install -r requirements-deploy.txt)") from None
        path = model_dir if str(model_dir).endswith(".onnx") else os.path.join(model_dir, "inference.onnx")
        if not os.path.isfile(path):
            raise ConfigError(f"Global.use_onnx: no {path}. Convert the export with: python "
                              f"tools/export_onnx.py --model_dir {model_dir} --save_file {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(cpu_threads)
        if ir_optim:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.path = path

    def __call__(self, batch):
        return self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(batch)})[0]


def _check_precision(g, model_dir):
    if g.get("use_int8"):
        folder = model_dir if os.path.isdir(model_dir) else os.path.dirname(model_dir)
        if not os.path.isfile(os.path.join(folder, "inference_int8.pdiparams")):
            raise ConfigError(f"Global.use_int8: {folder} has no int8 model (inference_int8.pdiparams); "
                              f"int8 inference needs a quantised export, which this project's "
                              f"tools/export_model.py does not produce")
        raise ConfigError("Global.use_int8: int8 models are not supported by this predictor")
    if g.get("use_tensorrt"):
        import paddle
        if not g.get("use_gpu") or not paddle.device.is_compiled_with_cuda():
            raise ConfigError("Global.use_tensorrt: TensorRT needs Global.use_gpu=True on a CUDA build "
                              f"of Paddle with TensorRT (this one: Paddle {paddle.__version__}, CUDA "
                              f"{'yes' if paddle.device.is_compiled_with_cuda() else 'no'})")
    if g.get("use_gpu"):
        import paddle
        if not paddle.device.is_compiled_with_cuda():
            raise ConfigError(f"Global.use_gpu: this Paddle build ({paddle.__version__}) has no CUDA "
                              f"support; use Global.use_gpu=False")
    if g.get("use_onnx") and g.get("use_gpu"):
        raise ConfigError("Global.use_onnx runs on the CPU only: set Global.use_gpu=False")


# ---- main -----------------------------------------------------------------------------------
class ClsPredictor:
    def __init__(self, config):
        g = config["Global"]
        self.config = config
        self.inference = inference
        model_dir = g["inference_model_dir"]
        _check_precision(g, model_dir)
        self.use_onnx = bool(g.get("use_onnx", False))
        self.paddle_config = None
        if self.use_onnx:
            self.predictor = OnnxPredictor(model_dir, int(g.get("cpu_num_threads", 1)), bool(g.get("ir_optim", True)))
        else:
            dynamic_shape = None
            if g.get("use_tensorrt") and g.get("trt_min_shape") is not None:
                dynamic_shape = (_shape(g["trt_min_shape"]), _shape(g.get("trt_opt_shape") or g["trt_min_shape"]),
                                 _shape(g.get("trt_max_shape") or g["trt_min_shape"]))
            self.paddle_config = self.inference.create_config(
                model_dir, use_gpu=bool(g.get("use_gpu", False)), gpu_id=int(g.get("gpu_id", 0)),
                gpu_mem_mb=int(g.get("gpu_mem", 1000)), enable_mkldnn=bool(g.get("enable_mkldnn", True)),
                cpu_threads=int(g.get("cpu_num_threads", 1)), use_tensorrt=bool(g.get("use_tensorrt", False)),
                precision="fp16" if g.get("use_fp16") else "fp32",
                min_subgraph_size=int(g.get("min_subgraph_size", 3)),
                max_batch_size=int(g.get("batch_size", 1)), dynamic_shape=dynamic_shape,
                ir_optim=bool(g.get("ir_optim", True)), pin_threads=bool(g.get("pin_cpu_threads", False)))
            if g.get("enable_profile"):
                self.paddle_config.enable_profile()
            self.predictor = self.inference.Predictor(self.paddle_config,
                                                      keep_intermediates=bool(g.get("keep_intermediates", False)))
        self.ops = build_transforms((config.get("PreProcess") or {}).get("transform_ops"))
        post = config.get("PostProcess") or {}
        self.postprocess = Topk(base_dir=SOURCE_ROOT, **dict(post.get("Topk") or {}))
        self.save_pre_label = SavePreLabel(**post["SavePreLabel"]) if post.get("SavePreLabel") else None
        self.batch_size = int(g.get("batch_size", 1))

    def predict_paths(self, paths, timings=None, failed=None):
        """Results for the images that could be read; an image that cannot be read or decoded
        is reported on stderr, recorded in ``failed`` (a ``cli_errors.InputFailures``) and
        skipped."""
        results = []
        failed = cli_errors.InputFailures("predict_cls") if failed is None else failed
        for start in range(0, len(paths), self.batch_size):
            t0 = time.perf_counter()
            chunk, arrays = [], []
            for path in paths[start:start + self.batch_size]:
                try:
                    arrays.append(preprocess(path, self.ops))
                    chunk.append(path)
                except (OSError, ValueError, cv2.error) as err:
                    failed.record(path, err)
            if not chunk:
                continue
            batch = np.stack(arrays).astype(np.float32)
            t1 = time.perf_counter()
            scores = self.predictor(batch)
            t2 = time.perf_counter()
            if isinstance(scores, list):
                scores = scores[0]
            chunk_results = self.postprocess(scores, chunk)
            if self.save_pre_label is not None:
                self.save_pre_label(chunk_results)
            results.extend(chunk_results)
            if timings is not None:
                timings["preprocess"].append((t1 - t0) * 1e3)
                timings["inference"].append((t2 - t1) * 1e3)
                timings["postprocess"].append((time.perf_counter() - t2) * 1e3)
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


#: batches left out of the benchmark means (PaddleClas's auto_log warmup)
REPORT_WARMUP = 2


def benchmark_report(predictor, config, timings, total_seconds):
    """PaddleClas's benchmark report (the auto_log fields) as a list of lines."""
    import paddle
    g = config["Global"]
    keep = slice(REPORT_WARMUP, None) if len(timings["inference"]) > REPORT_WARMUP else slice(None)
    mean = {k: round(float(np.mean(timings[k][keep])), 4) for k in ("preprocess", "inference", "postprocess")}
    cfg = predictor.paddle_config
    if cfg is not None:
        device = "gpu" if cfg.use_gpu() else "cpu"
        ir_optim, mkldnn = cfg.ir_optim(), cfg.mkldnn_enabled()
        threads, trt = cfg.cpu_math_library_num_threads(), cfg.tensorrt_engine_enabled()
    else:
        device, ir_optim, mkldnn = "cpu (onnxruntime)", bool(g.get("ir_optim", True)), False
        threads, trt = int(g.get("cpu_num_threads", 1)), False
    precision = "int8" if g.get("use_int8") else ("fp16" if g.get("use_fp16") else "fp32")
    crop = _crop_size((config.get("PreProcess") or {}).get("transform_ops"))
    shape = [3, crop, crop] if isinstance(crop, int) else ([3, crop[1], crop[0]] if crop else "dynamic")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return [
        "---------------------- Env info ----------------------",
        f" OS_version: {platform.platform()}",
        f" CUDA_version: {paddle.version.cuda()}",
        f" CUDNN_version: {paddle.version.cudnn()}",
        "---------------------- Paddle info ----------------------",
        f" paddle_version: {paddle.__version__}",
        f" paddle_commit: {getattr(paddle, '__git_commit__', 'unknown')}",
        " log_api_version: 1.0",
        "----------------------- Conf info -----------------------",
        f" runtime_device: {device}",
        f" ir_optim: {ir_optim}",
        " enable_memory_optim: True",
        f" enable_tensorrt: {trt}",
        f" enable_mkldnn: {mkldnn}",
        f" cpu_math_library_num_threads: {threads}",
        "----------------------- Model info ----------------------",
        f" model_name: {g.get('model_name', 'cls')}",
        f" precision: {precision}",
        "----------------------- Data info -----------------------",
        f" batch_size: {int(g.get('batch_size', 1))}",
        f" input_shape: {shape}",
        f" data_num: {int(sum(timings['batch_sizes']))}",
        "----------------------- Perf info -----------------------",
        f" cpu_rss(MB): {rss_mb:.1f}, gpu_rss(MB): None, gpu_util: None%",
        f" total time spent(s): {total_seconds:.4f}",
        f" preprocess_time(ms): {mean['preprocess']}, inference_time(ms): {mean['inference']}, "
        f"postprocess_time(ms): {mean['postprocess']}",
    ]


def _write_lines(path, lines):
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Paddle Inference image classification")
    parser.add_argument("-c", "--config", default=None,
                        help="predictor YAML (PaddleClas schema; default: the checkout's deploy/configs/inference_cls.yaml)")
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
    parser.add_argument("--use_onnx", **bool_flag, help="= Global.use_onnx: ONNX Runtime on inference.onnx")
    parser.add_argument("--precision", choices=["fp32", "fp16"], help="TensorRT/GPU precision")
    parser.add_argument("--trt_min_shape", help="NxCxHxW, TensorRT dynamic shape minimum")
    parser.add_argument("--trt_opt_shape", help="NxCxHxW, TensorRT optimisation shape")
    parser.add_argument("--trt_max_shape", help="NxCxHxW, TensorRT dynamic shape maximum")
    parser.add_argument("--topk", type=int)
    parser.add_argument("--class_id_map_file")
    parser.add_argument("--benchmark", **bool_flag, help="print PaddleClas's benchmark report and latency percentiles")
    parser.add_argument("--save_log_path", help="= Global.save_log_path")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    return parser.parse_args(argv)


def build_config(args):
    if not args.config and not os.path.isfile(DEFAULT_CONFIG):
        raise ConfigError("-c CONFIG is required outside a source checkout (PaddleClas's "
                          "deploy/configs/inference_cls.yaml works as is)")
    config = load_config(args.config or DEFAULT_CONFIG, args.override)
    g = config.setdefault("Global", {})
    mapping = {"model_dir": "inference_model_dir", "infer_imgs": "infer_imgs", "batch_size": "batch_size",
               "enable_mkldnn": "enable_mkldnn", "cpu_threads": "cpu_num_threads", "use_gpu": "use_gpu",
               "pin_cpu_threads": "pin_cpu_threads", "keep_intermediates": "keep_intermediates",
               "gpu_id": "gpu_id", "use_tensorrt": "use_tensorrt", "trt_min_shape": "trt_min_shape",
               "trt_opt_shape": "trt_opt_shape", "trt_max_shape": "trt_max_shape", "benchmark": "benchmark",
               "use_onnx": "use_onnx", "save_log_path": "save_log_path"}
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


@cli_errors.main_guard
def main(argv=None):
    args = parse_args(argv)
    config = validate_config(build_config(args))
    g = config["Global"]
    if not g.get("inference_model_dir") or not g.get("infer_imgs"):
        raise ConfigError("Global.inference_model_dir and Global.infer_imgs are required")
    user = load_config(args.config) if args.config else {}
    explicit_pre = "PreProcess" in user or any(o.startswith("PreProcess") for o in args.override)
    explicit_topk = ("topk" in ((user.get("PostProcess") or {}).get("Topk") or {}) or args.topk is not None
                     or any(o.startswith("PostProcess.Topk.topk") for o in args.override))
    for note in merge_model_yml(config, load_model_yml(g["inference_model_dir"]), explicit_pre, explicit_topk):
        print(f"[predict_cls] {note}", file=sys.stderr)
    if g.get("enable_benchmark") and not g.get("benchmark"):
        print("[predict_cls] Global.enable_benchmark has no effect (in PaddleClas either); "
              "use Global.benchmark=True for the benchmark report", file=sys.stderr)
    predictor = ClsPredictor(config)
    paths = list_images(g["infer_imgs"])
    timings = {"preprocess": [], "inference": [], "postprocess": [], "batch_sizes": []}
    start = time.perf_counter()
    lines, failed = [], cli_errors.InputFailures("predict_cls")
    for result in predictor.predict_paths(paths, timings, failed):
        line = f"{result['file_name']}:\tclass id(s): {result['class_ids']}, score(s): {result['scores']}"
        if "label_names" in result:
            line += f", label_name(s): {result['label_names']}"
        print(line)
        lines.append(line)
    total = time.perf_counter() - start
    if g.get("benchmark") and len(failed) < len(paths):
        report = benchmark_report(predictor, config, timings, total)
        print("\n".join(report))
        _write_lines(g.get("save_log_path") or "./auto_log.log", report)
        stats = benchmark(predictor, [p for p in paths if p not in failed], args.warmup, args.repeats)
        threads = g.get("cpu_num_threads", 1)
        if g.get("use_gpu"):
            device = "GPU" + (" TensorRT" if g.get("use_tensorrt") else "")
        elif predictor.use_onnx:
            device = f"CPU (ONNX Runtime, {threads} threads)"
        else:
            device = f"CPU ({'oneDNN' if g.get('enable_mkldnn', True) else 'no oneDNN'}, {threads} threads)"
        print(f"[benchmark] {device}, batch {stats['batch_size']}, {stats['runs']} runs: "
              f"latency p50 {stats['p50_ms']:.2f} ms, p90 {stats['p90_ms']:.2f} ms, p99 {stats['p99_ms']:.2f} ms, "
              f"mean {stats['mean_ms']:.2f} ms; throughput {stats['throughput_img_s']:.2f} images/s; "
              f"preprocess {np.mean(timings['preprocess']):.2f} ms/batch")
    elif g.get("save_log_path"):
        _write_lines(g["save_log_path"], lines)
    failed.raise_if_any(len(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
