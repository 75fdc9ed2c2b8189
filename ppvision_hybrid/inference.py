"""Paddle Inference predictors for exported ppvision-hybrid models.

This module imports only ``paddle`` and ``numpy`` (never the model code), so deployment needs
just the exported files: ``inference.json`` (Paddle 3.x / PIR) or ``inference.pdmodel``
(Paddle 2.6 / legacy program) plus ``inference.pdiparams``.

oneDNN on Paddle 3.3.1
----------------------
Three oneDNN passes of Paddle 3.3.1's PIR pipeline mistranslate some graph patterns (a reshape
with a constant shape right after a transpose, a multiplication by a constant right after an
integer element-wise op, an in-place op behind a memory-sharing layout conversion). The exported
models are written so that none of them occurs (docs/deploy.md), so every export runs in a
``paddle.inference.Config`` as any consumer sets it up, with nothing deleted:
:data:`ONEDNN_BROKEN_PASSES` is empty. :func:`find_breaking_onednn_passes` (keep a prefix of the
pass pipeline, find the first pass whose application breaks a model, repeat) stays as the
diagnostic that finds such a pass in a new graph.
"""
import contextlib
import os
import tempfile

import numpy as np

__all__ = [
    "ONEDNN_BROKEN_PASSES", "model_files", "create_config", "create_predictor", "Predictor",
    "relative_error", "onednn_pass_names", "find_breaking_onednn_passes", "CPU_AFFINITY", "pin_cpu_threads",
    "check_gpu_kernels", "ExportedModelError", "restore_eager_threads",
]


class ExportedModelError(RuntimeError):
    """Exported model files that are missing, corrupt or truncated; the message names the file
    and says to re-export (``is_user_error``: one line from cli_errors.main_guard)."""

    is_user_error = True
    exit_code = 2


#: how a PIR program (``inference.json``) records a parameter op
_PIR_PARAMETER_OP = b'{"#":"p",'


def _needs_parameters(model_file):
    """Whether the graph reads parameters from a ``.pdiparams`` file (PIR ``.json``: it has
    parameter ops; a legacy ``.pdmodel`` is not inspected)."""
    if not model_file.endswith(".json"):
        return False
    with open(model_file, "rb") as f:
        return _PIR_PARAMETER_OP in f.read()

#: Intel OpenMP thread placement for CPU inference: thread i on core i. Measured on the 2-core
#: machine (TransXNet-T, batch 1): 1 thread 125 -> 108 ms, 2 threads 93 -> 76 ms; the
#: authors' PyTorch (GNU OpenMP) gained nothing from any pinning. Every process pinned this way
#: uses cores 0..threads-1: run several predictor processes on one machine with disjoint
#: ``KMP_AFFINITY=explicit,proclist=[...]`` settings (or none) instead.
CPU_AFFINITY = "granularity=fine,compact,1,0"


def pin_cpu_threads(affinity=CPU_AFFINITY):
    """Pin Paddle's OpenMP threads to cores by setting ``KMP_AFFINITY`` unless the environment
    already sets it (never overridden). Takes effect if called before the process's first
    OpenMP parallel work (before the first predictor runs; importing paddle is fine). Returns
    the value in effect."""
    return os.environ.setdefault("KMP_AFFINITY", affinity)

#: oneDNN passes to delete by default (pass -> reason). Empty: every exported model runs with the
#: full pipeline. Kept so :func:`create_config` callers can still name passes to delete.
ONEDNN_BROKEN_PASSES = {}


def model_files(model_path, filename="inference"):
    """Return ``(model_file, params_file)`` for a directory or a file path.

    Accepts a directory holding ``<filename>.json`` (Paddle 3.x) or ``<filename>.pdmodel``
    (Paddle 2.6), a path prefix (``dir/inference``) or the model file itself. ``params_file``
    is ``""`` for a graph without parameters.
    """
    if os.path.isdir(model_path):
        prefix = os.path.join(model_path, filename)
    elif model_path.endswith((".json", ".pdmodel")):
        prefix = os.path.splitext(model_path)[0]
    else:
        prefix = model_path
    params = prefix + ".pdiparams"
    for ext in (".json", ".pdmodel"):
        if os.path.isfile(prefix + ext):
            if os.path.isfile(params):
                return prefix + ext, params
            if _needs_parameters(prefix + ext):  # without them Paddle predicts garbage, silently
                raise ExportedModelError(
                    f"{params} is missing: the exported model {prefix + ext} needs its parameters "
                    f"file. Copy it beside the model or re-export with tools/export_model.py.")
            return prefix + ext, ""  # a graph without parameters is saved without a .pdiparams
    raise FileNotFoundError(
        f"no exported model at '{model_path}': expected {prefix}.json (Paddle 3.x) or "
        f"{prefix}.pdmodel (Paddle 2.6) with {prefix}.pdiparams. Export one with "
        f"tools/export_model.py.")


_PRECISIONS = ("fp32", "fp16", "int8")


def create_config(model_path, use_gpu=False, gpu_id=0, gpu_mem_mb=1000, enable_mkldnn=True,
                  cpu_threads=None, mkldnn_cache_capacity=10, use_tensorrt=False,
                  precision="fp32", min_subgraph_size=3, trt_workspace_size=1 << 30,
                  max_batch_size=1, dynamic_shape=None, ir_optim=True, memory_optim=False,
                  delete_passes=None, log=False, pin_threads=False):
    """Build a ``paddle.inference.Config``.

    Args:
        model_path: export directory, prefix or model file (see :func:`model_files`).
        enable_mkldnn: oneDNN on CPU (ignored on GPU).
        cpu_threads: math-library threads on CPU (default: ``OMP_NUM_THREADS`` or 1).
        use_tensorrt / precision: TensorRT subgraphs in ``fp32``/``fp16``/``int8`` (GPU only);
            on GPU without TensorRT, ``fp16`` runs the GPU kernels in half precision.
        dynamic_shape: TensorRT dynamic shape ranges, either ``(min, opt, max)`` NCHW shapes for
            the single input or a dict ``{input_name: (min, opt, max)}``.
        delete_passes: passes to delete; ``None`` deletes :data:`ONEDNN_BROKEN_PASSES` (empty)
            when oneDNN is on and nothing otherwise.
        memory_optim: memory reuse between intermediates (with the new executor, which Paddle
            3.3.1 needs for it).
        pin_threads: on CPU, :func:`pin_cpu_threads` first (process-wide; see
            :data:`CPU_AFFINITY` for the measured gain and the multi-process caveat).
    """
    from paddle import inference

    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}")
    if use_tensorrt and not use_gpu:
        raise ValueError("use_tensorrt needs use_gpu=True")
    model_file, params_file = model_files(model_path)
    config = inference.Config(model_file, params_file)
    if use_gpu:
        if not _paddle_has_cuda():
            raise RuntimeError("use_gpu=True but this Paddle build has no CUDA support "
                               "(install paddlepaddle-gpu)")
        check_gpu_kernels(gpu_id)  # a wheel without code for this GPU computes garbage, silently
        gpu_precision = {"fp16": inference.PrecisionType.Half}.get(precision, inference.PrecisionType.Float32)
        if use_tensorrt:
            config.enable_use_gpu(gpu_mem_mb, gpu_id)
            trt_precision = {"fp32": inference.PrecisionType.Float32, "fp16": inference.PrecisionType.Half,
                             "int8": inference.PrecisionType.Int8}[precision]
            config.enable_tensorrt_engine(workspace_size=trt_workspace_size, max_batch_size=max_batch_size,
                                          min_subgraph_size=min_subgraph_size, precision_mode=trt_precision,
                                          use_static=False, use_calib_mode=(precision == "int8"))
            if dynamic_shape is not None:
                if not isinstance(dynamic_shape, dict):
                    dynamic_shape = {"x": dynamic_shape}
                mins = {k: list(v[0]) for k, v in dynamic_shape.items()}
                opts = {k: list(v[1]) for k, v in dynamic_shape.items()}
                maxs = {k: list(v[2]) for k, v in dynamic_shape.items()}
                config.set_trt_dynamic_shape_info(mins, maxs, opts)
        else:
            config.enable_use_gpu(gpu_mem_mb, gpu_id, gpu_precision)
    else:
        config.disable_gpu()
        if pin_threads:
            pin_cpu_threads()
        if cpu_threads is None:
            cpu_threads = int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
        config.set_cpu_math_library_num_threads(int(cpu_threads))
        # Paddle 2.6 names these *_mkldnn; 3.x renamed them *_onednn.
        def onednn(name):
            return getattr(config, name, None) or getattr(config, name.replace("onednn", "mkldnn"))

        if enable_mkldnn:
            onednn("enable_onednn")()
            # Inputs of several sizes (dynamic H/W) each get cached kernels; bound the cache.
            onednn("set_onednn_cache_capacity")(int(mkldnn_cache_capacity))
        else:
            onednn("disable_onednn")()
    if delete_passes is None:
        delete_passes = list(ONEDNN_BROKEN_PASSES) if (enable_mkldnn and not use_gpu) else []
    for name in delete_passes:
        config.delete_pass(name)
    config.switch_ir_optim(bool(ir_optim))
    config.enable_memory_optim(bool(memory_optim))
    if memory_optim and hasattr(config, "enable_new_executor"):
        # Paddle 3.3.1 fails to build any PIR model with memory optimization on ("Not find
        # predictor_id 0 and pass_name memory_optimize_pass") unless the new executor runs it.
        config.enable_new_executor()
    if not log:
        config.disable_glog_info()
    return config



_GPU_CHECKED = set()


def check_gpu_kernels(gpu_id=0, compute=None):
    """Raise ``RuntimeError`` unless Paddle's own GPU kernels compute correctly on ``gpu_id``
    (once per device and process). A GPU wheel without code for the device's compute capability
    does not fail: its kernels silently return garbage (PyPI ``paddlepaddle-gpu`` 2.6.2, CUDA
    11.8, on an H100: ``x + 1`` off by up to 20.7, every model's output wrong; see
    docs/benchmarks.md). ``compute`` maps a float32 numpy array to ``2 * x + 1`` computed on the
    GPU; the default uses Paddle eager ops (tests pass a stand-in)."""
    import paddle
    if gpu_id in _GPU_CHECKED:
        return
    if compute is None:
        def compute(values):
            x = paddle.to_tensor(values, place=paddle.CUDAPlace(gpu_id))
            return (x * 2 + 1).numpy()
    values = np.arange(64, dtype="float32")
    got = np.asarray(compute(values))
    if got.shape != values.shape or not np.allclose(got, 2 * values + 1):
        try:
            capability = "%d.%d" % tuple(paddle.device.cuda.get_device_capability(gpu_id))
            name = paddle.device.cuda.get_device_name(gpu_id)
        except Exception:  # a build or device that cannot say
            capability, name = "unknown", "unknown"
        raise RuntimeError(
            f"Paddle's GPU kernels give wrong results on GPU {gpu_id} ({name}, compute capability "
            f"{capability}; Paddle {paddle.__version__}, CUDA {paddle.version.cuda()}): this build has no "
            f"code for this GPU. Install a paddlepaddle-gpu wheel built for it (Paddle's own index for "
            f"your CUDA version), or run on CPU.")
    _GPU_CHECKED.add(gpu_id)


def _paddle_has_cuda():
    import paddle
    return paddle.device.is_compiled_with_cuda()


#: Paddle's threshold (GB) for freeing intermediate tensors; negative: never free them.
_GC_FLAG = "FLAGS_eager_delete_tensor_gb"


@contextlib.contextmanager
def _garbage_collection(enabled):
    """Within the block, executors being built free intermediates (``enabled``, Paddle's
    default) or keep them all (see :class:`Predictor`); the previous value comes back after."""
    if enabled:
        yield
        return
    import paddle
    saved = paddle.get_flags([_GC_FLAG])
    paddle.set_flags({_GC_FLAG: -1.0})
    try:
        yield
    finally:
        paddle.set_flags(saved)


def restore_eager_threads():
    """Paddle Inference sets the CPU math library of the calling thread to one thread at the end of
    every run; eager Paddle in the same process would then run on one core. Set it back to
    ``FLAGS_paddle_num_threads``, the count eager Paddle starts with."""
    import paddle
    from paddle.base import core
    core.set_num_threads(int(paddle.get_flags(["FLAGS_paddle_num_threads"])["FLAGS_paddle_num_threads"]))


class Predictor:
    """A Paddle Inference predictor with a NumPy interface.

    ``predictor(batch)`` takes an NCHW float32 array and returns the first output (logits,
    probabilities) or, for models with several outputs (``features_only`` exports), a list.

    ``keep_intermediates=True`` keeps every intermediate tensor allocated between calls instead
    of freeing each after its last use: lower latency, more memory (all activations of a call
    stay allocated; they grow with the batch). By default Paddle 3.x frees them from a
    background thread and allocates them afresh on every call; on the 2-core CPU that cost
    TransXNet-T at batch 1, 2 threads, about a quarter of its latency (median 140 -> 104 ms,
    +270 MB resident; docs/benchmarks.md). Paddle reads the setting
    (``FLAGS_eager_delete_tensor_gb``, process-wide) when it builds the executor on the first
    call, so the flag is set for that call only and restored afterwards: other predictors in
    the process keep their own setting.
    """

    def __init__(self, config, keep_intermediates=False):
        from paddle import inference
        self.config = config
        self.keep_intermediates = bool(keep_intermediates)
        self._executor_built = False
        try:
            self.predictor = inference.create_predictor(config)
        except (RuntimeError, ValueError) as err:  # Paddle raises either for damaged files
            raise _unreadable_model(config, err) from err
        self.input_names = self.predictor.get_input_names()
        self.output_names = self.predictor.get_output_names()
        self._inputs = [self.predictor.get_input_handle(n) for n in self.input_names]
        self._outputs = [self.predictor.get_output_handle(n) for n in self.output_names]

    def __call__(self, *arrays):
        if len(arrays) != len(self._inputs):
            raise ValueError(f"model takes {len(self._inputs)} input(s) {self.input_names}, "
                             f"got {len(arrays)}")
        for handle, array in zip(self._inputs, arrays):
            array = np.ascontiguousarray(array, dtype=np.float32)
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(array)
        if self._executor_built:
            self.predictor.run()
        else:
            with _garbage_collection(enabled=not self.keep_intermediates):
                self.predictor.run()
            self._executor_built = True
        restore_eager_threads()
        outputs = [h.copy_to_cpu() for h in self._outputs]
        return outputs[0] if len(outputs) == 1 else outputs

    run = __call__


def _unreadable_model(config, err):
    """The ExportedModelError for a model Paddle cannot load: which file, and re-export."""
    text = " ".join(str(err).split())
    model_file, params_file = config.prog_file(), config.params_file()
    if "json" in text or "parse" in text or not params_file:
        culprit = f"{model_file} is not a valid exported model (corrupt or truncated)"
    elif "tensor" in text.lower() or "read" in text.lower():
        culprit = f"{params_file} is corrupt or truncated (it does not hold the model's parameters)"
    else:
        culprit = f"cannot load the exported model {model_file} with {params_file}"
    reason = text.split("[Hint", 1)[0].strip()[:200]
    return ExportedModelError(f"{culprit}: {reason}. Re-export it with tools/export_model.py.")


def create_predictor(model_path, keep_intermediates=False, **kwargs):
    """:class:`Predictor` for an exported model; ``keep_intermediates`` as in :class:`Predictor`,
    the other keyword arguments as in :func:`create_config`."""
    return Predictor(create_config(model_path, **kwargs), keep_intermediates=keep_intermediates)


def relative_error(actual, expected):
    """``max|actual - expected| / max|expected|`` (the project's export tolerance metric)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return float("inf")
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12))


# ---- oneDNN pass bisection ------------------------------------------------------------------
@contextlib.contextmanager
def _capture_native_output():
    """Redirect the process-level stdout/stderr (C++ logging) into a string holder."""
    holder = {"text": ""}
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            yield holder
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.seek(0)
            holder["text"] = tmp.read().decode("utf-8", "replace")


#: passes that run before the oneDNN fuse passes or place/lay out kernels: never candidates.
_INFRASTRUCTURE_PASSES = ("add_shadow_output_after_dead_parameter_pass", "delete_quant_dequant_linear_op_pass",
                          "delete_weight_dequant_linear_op_pass")
_FIRST_NON_FUSE_PASS = "onednn_placement_pass"
#: late passes that may be deleted without turning oneDNN off (kept as bisection candidates).
_DELETABLE_LATE_PASSES = ("common_subexpression_elimination_pass", "constant_folding_pass",
                          "dead_code_elimination_pass", "inplace_pass")


def _logged_pass_names(model_path, cpu_threads, delete_passes):
    import re
    from paddle import inference
    config = create_config(model_path, enable_mkldnn=True, cpu_threads=cpu_threads,
                           delete_passes=delete_passes, log=True)
    with _capture_native_output() as out:
        try:
            inference.create_predictor(config)
        except Exception:  # the names seen before the failure are what we want
            pass
    return list(dict.fromkeys(re.findall(r"Running PIR pass \[(\w+)\]", out["text"])))


def onednn_pass_names(model_path, cpu_threads=1):
    """The oneDNN fuse passes the CPU pipeline runs on this model, in order.

    Read from the predictor's own log (``--- Running PIR pass [name]``). When building fails
    inside a pass, that pass is deleted and the build retried, so passes after it are seen too.
    Of the passes from ``onednn_placement_pass`` on (kernel placement, layout, clean-up) only
    those that can be deleted without turning oneDNN off are listed, in pipeline order.
    """
    names, deleted = [], []
    for _ in range(20):
        seen = _logged_pass_names(model_path, cpu_threads, deleted)
        names.extend(n for n in seen if n not in names)
        if not seen or _FIRST_NON_FUSE_PASS in seen:
            break
        deleted.append(seen[-1])
    late = [n for n in names if n in _DELETABLE_LATE_PASSES]
    if _FIRST_NON_FUSE_PASS in names:
        names = names[:names.index(_FIRST_NON_FUSE_PASS)]
    return [n for n in names if n not in _INFRASTRUCTURE_PASSES] + late


def _passes_ok(model_path, inputs, expected, delete_passes, rtol, cpu_threads):
    try:
        with _capture_native_output():
            predictor = create_predictor(model_path, enable_mkldnn=True, cpu_threads=cpu_threads,
                                         delete_passes=delete_passes)
            for x, y in zip(inputs, expected):
                out = predictor(x)
                if relative_error(out, y) > rtol:
                    return False
        return True
    except Exception:
        return False


def find_breaking_onednn_passes(model_path, inputs, expected, rtol=1e-4, cpu_threads=1,
                                verbose=False):
    """Smallest list of oneDNN passes whose deletion makes the predictor match ``expected``.

    ``inputs``/``expected``: lists of arrays (e.g. one 224x224 and one odd-size batch with
    their dygraph outputs). Passes run in pipeline order, so keeping a prefix of the pipeline
    and binary-searching for the shortest failing prefix names the first breaking pass; it is
    deleted and the search repeats until the model passes. Returns ``[]`` if nothing breaks.
    """
    names = onednn_pass_names(model_path, cpu_threads)
    deleted = []
    while not _passes_ok(model_path, inputs, expected, deleted, rtol, cpu_threads):
        candidates = [n for n in names if n not in deleted]
        if not _passes_ok(model_path, inputs, expected, deleted + candidates, rtol, cpu_threads):
            raise RuntimeError("the model fails with oneDNN even with every listed pass deleted "
                               f"({len(candidates)} passes): not a fuse-pass problem")
        lo, hi = 0, len(candidates)   # prefix of length lo is fine, length hi fails
        while hi - lo > 1:
            mid = (lo + hi) // 2
            trial = deleted + candidates[mid:]
            if _passes_ok(model_path, inputs, expected, trial, rtol, cpu_threads):
                lo = mid
            else:
                hi = mid
        culprit = candidates[hi - 1]
        if verbose:
            print(f"breaking pass: {culprit}")
        deleted.append(culprit)
    # Passes are not perfectly independent (deleting a clean-up pass can itself break a
    # graph), so drop every found pass that is not needed once the others are deleted.
    for name in list(deleted):
        trial = [n for n in deleted if n != name]
        if _passes_ok(model_path, inputs, expected, trial, rtol, cpu_threads):
            deleted = trial
    return deleted


def time_predictor(predictor, batch, warmup=3, repeats=10, max_seconds=None):
    """Latencies in milliseconds of ``predictor(batch)`` (:func:`ppvision_hybrid.timing.time_calls`)."""
    from .timing import time_calls
    return time_calls(lambda: predictor(batch), warmup, repeats, max_seconds)
