"""Static-graph export for Paddle Inference (dynamic batch; dynamic H/W for dense backbones)."""
import copy
import os

import numpy as np
import paddle
import paddle.nn as nn
from paddle.static import InputSpec

from .io_atomic import atomic_directory, fault_point

__all__ = ["ExportError", "deploy_copy", "export_inference_model", "read_back"]


class _WithSoftmax(nn.Layer):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return nn.functional.softmax(self.model(x), axis=-1)


def deploy_copy(layer):
    """An eval-mode deep copy of ``layer`` in its inference form: every sublayer that offers
    ``re_parameterize()`` (our backbones, also inside a PaddleDetection / PaddleSeg model) is
    re-parameterized. ``layer`` itself is left as it is."""
    copied = copy.deepcopy(layer)
    copied.eval()
    for sub in [copied] + copied.sublayers():
        if hasattr(sub, "re_parameterize") and not getattr(sub, "is_repped", False):
            sub.re_parameterize()
    return copied


def export_inference_model(model, save_dir, image_shape=(3, 224, 224), with_softmax=False,
                           dynamic_hw=False, filename="inference", infer_config=None):
    """``paddle.jit.to_static`` + ``paddle.jit.save`` of :func:`deploy_copy` ``(model)`` to
    ``save_dir/filename``; ``model`` is left as it is (mode, weights, layers).

    The batch dimension is always dynamic; with ``dynamic_hw`` the spatial dims are too, so one
    saved model serves every input size. Paddle 3.x writes ``.json`` (PIR), 2.6 ``.pdmodel``.
    ``infer_config`` (keyword arguments of :func:`.inference_yml.write_inference_yml`) also
    writes ``inference.yml`` for a classification export. The files are written as one set
    (:func:`.io_atomic.atomic_directory`): interrupted or failing, the old export in ``save_dir``
    stays whole and usable. Returns the path prefix.
    """
    layer = deploy_copy(model)
    if with_softmax:
        layer = _WithSoftmax(layer)
    c, h, w = image_shape
    spec = [InputSpec([None, c, None if dynamic_hw else h, None if dynamic_hw else w], "float32", "x")]
    static = paddle.jit.to_static(layer, input_spec=spec, full_graph=True)
    # The set (program, parameters, inference.yml) replaces the old one in one step; files of an
    # older export under the same name (e.g. inference.pdmodel next to a new inference.json) go.
    with atomic_directory(save_dir, replaces=lambda entry: entry.startswith(filename + ".")) as tmp:
        fault_point("export started")
        paddle.jit.save(static, os.path.join(tmp, filename))
        read_back(os.path.join(tmp, filename), save_dir)
        if infer_config is not None:
            from .inference_yml import write_inference_yml
            write_inference_yml(tmp, **infer_config)
    return os.path.join(save_dir, filename)


class ExportError(RuntimeError):
    """An export that could not be written completely; the previous export was kept."""


def read_back(prefix, save_dir):
    """Check what ``paddle.jit.save`` wrote: it does not report a failed write (a full disk leaves
    a truncated ``.pdiparams`` and no error), so a set is only swapped in once it loads and its
    parameter file holds at least the bytes of the weights the saved program declares
    (``jit.load`` accepts some truncated files of small models)."""
    try:
        loaded = paddle.jit.load(prefix)
        params = prefix + ".pdiparams"
        tensors = list(loaded.parameters()) + list(loaded.buffers())
        payload = sum(int(np.prod(t.shape)) * t.element_size() for t in tensors)
        if os.path.exists(params) and os.path.getsize(params) < payload:
            raise ValueError(f"{os.path.basename(params)} holds {os.path.getsize(params)} bytes, "
                             f"the weights need {payload}")
    except Exception as e:  # Paddle raises RuntimeError/ValueError/... for damaged files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"the export for {save_dir} was written incompletely and does not load "
                          f"({first}); the disk may be full. Nothing was replaced: the previous "
                          f"contents of {save_dir} are as they were") from e
