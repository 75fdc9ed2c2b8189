"""Static-graph export for Paddle Inference (dynamic batch; dynamic H/W for dense backbones)."""
import os

import paddle
import paddle.nn as nn
from paddle.static import InputSpec

__all__ = ["export_inference_model", "inference_model_files"]


class _WithSoftmax(nn.Layer):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return nn.functional.softmax(self.model(x), axis=-1)


def export_inference_model(model, save_dir, image_shape=(3, 224, 224), with_softmax=False,
                           dynamic_hw=False, filename="inference", infer_config=None):
    """``paddle.jit.to_static`` + ``paddle.jit.save`` to ``save_dir/filename``.

    The batch dimension is always dynamic; with ``dynamic_hw`` the spatial dims are too, so one
    saved model serves every input size. Paddle 3.x writes ``.json`` (PIR), 2.6 ``.pdmodel``.
    ``infer_config`` (keyword arguments of :func:`.inference_yml.write_inference_yml`) also
    writes ``inference.yml`` for a classification export. Returns the path prefix.
    """
    model.eval()
    layer = _WithSoftmax(model) if with_softmax else model
    c, h, w = image_shape
    spec = [InputSpec([None, c, None if dynamic_hw else h, None if dynamic_hw else w], "float32", "x")]
    # to_static replaces the layer's forward in place; put the eager one back afterwards, so the
    # caller's model stays an eager model (and tests compare the saved graph with real eager
    # outputs, not with the traced program run again).
    had_own_forward, own_forward = "forward" in layer.__dict__, layer.__dict__.get("forward")
    try:
        static = paddle.jit.to_static(layer, input_spec=spec, full_graph=True)
        os.makedirs(save_dir, exist_ok=True)
        prefix = os.path.join(save_dir, filename)
        paddle.jit.save(static, prefix)
    finally:
        if had_own_forward:
            layer.forward = own_forward
        else:
            layer.__dict__.pop("forward", None)
    if infer_config is not None:
        from .inference_yml import write_inference_yml
        write_inference_yml(save_dir, **infer_config)
    return prefix


def inference_model_files(model_dir, filename="inference"):
    """(model_file, params_file) in ``model_dir``, accepting the 3.x ``.json`` or 2.6 ``.pdmodel``."""
    params = os.path.join(model_dir, filename + ".pdiparams")
    for ext in (".json", ".pdmodel"):
        path = os.path.join(model_dir, filename + ext)
        if os.path.exists(path):
            return path, params
    raise FileNotFoundError(f"no {filename}.json or {filename}.pdmodel in {model_dir}")
