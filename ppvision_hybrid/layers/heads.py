"""Multi-head projection: one ``Linear(C -> parts * C)`` (e.g. qkv) split into ``parts``
tensors of ``[B, heads, N, C / heads]`` (Vaswani et al. 2017, Sec. 3.2.2).

Eager training (gradients on) runs one GEMM per part (the Linear's weight and bias sliced
column-wise) and a 4-D transpose per part: Paddle 3.3.1's CPU 5-D transpose of the fused ``[B, N, parts, heads, hd]``
output and the backward of the slices that split it (each a zero-filled full-size gradient)
cost more than the GEMM itself in a training step (docs/benchmarks.md, "Session 12"). Inference
(no gradients) and saved graphs keep the single fused GEMM and transpose.
"""
import warnings

import paddle
import paddle.nn.functional as F

from .fast_ops import eager_execution


def contiguous(t):
    """``t`` copied to contiguous memory. Paddle 3 transposes lazily (strided views); later ops
    then take slow strided paths, so copy once. Traced graphs lay out memory themselves: there
    contiguous() returns its input (with a warning, silenced here); Paddle 2.6's legacy static
    Variables have no contiguous()."""
    if not hasattr(t, "contiguous"):
        return t
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*contiguous.*")
        return t.contiguous()


def project_heads(x, linear, num_heads, parts=3):
    """x: [B, N, C_in]; ``linear``: ``nn.Linear`` with ``parts * C`` outputs.
    Returns ``parts`` tensors [B, heads, N, C / heads], in the Linear's output order."""
    batch, tokens = x.shape[0], x.shape[1]
    width = linear.weight.shape[1] // parts
    head_dim = width // num_heads
    if eager_execution() and paddle.is_grad_enabled():
        outs = []
        for i in range(parts):
            cols = slice(i * width, (i + 1) * width)
            bias = None if linear.bias is None else linear.bias[cols]
            y = F.linear(x, linear.weight[:, cols], bias).reshape([batch, tokens, num_heads, head_dim])
            outs.append(contiguous(y.transpose([0, 2, 1, 3])))
        return outs
    y = contiguous(linear(x).reshape([batch, tokens, parts, num_heads, head_dim]).transpose([2, 0, 3, 1, 4]))
    return [y[i] for i in range(parts)]
