"""Static-graph export for Paddle Inference (dynamic batch; dynamic H/W for dense backbones)."""
import copy
import os

import paddle
import paddle.nn as nn
from paddle.static import InputSpec

__all__ = ["deploy_copy", "export_inference_model"]


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
    writes ``inference.yml`` for a classification export. Returns the path prefix.
    """
    layer = deploy_copy(model)
    if with_softmax:
        layer = _WithSoftmax(layer)
    c, h, w = image_shape
    spec = [InputSpec([None, c, None if dynamic_hw else h, None if dynamic_hw else w], "float32", "x")]
    static = paddle.jit.to_static(layer, input_spec=spec, full_graph=True)
    os.makedirs(save_dir, exist_ok=True)
    prefix = os.path.join(save_dir, filename)
    paddle.jit.save(static, prefix)
    if infer_config is not None:
        from .inference_yml import write_inference_yml
        write_inference_yml(save_dir, **infer_config)
    return prefix
