"""Shared layers whose traced formulation must equal the native op."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from paddle.static import InputSpec

from ppvision_hybrid.layers import adaptive_avg_pool2d_matmul, adaptive_pool_matrix


@pytest.mark.parametrize("hw", [(56, 56), (14, 9), (7, 7), (5, 3), (1, 2), (97, 131)])
def test_adaptive_avg_pool_as_matrices_equals_the_op(hw):
    x = paddle.randn([2, 3, *hw])
    for out in (7, 1, 4):
        np.testing.assert_allclose(adaptive_avg_pool2d_matmul(x, out).numpy(),
                                   F.adaptive_avg_pool2d(x, out).numpy(), rtol=0, atol=1e-5)


def test_adaptive_pool_matrix_rows_average_the_bins():
    m = adaptive_pool_matrix(10, 4).numpy()  # bins [0,3) [2,5) [5,8) [7,10)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(m[1], [0, 0, 1 / 3, 1 / 3, 1 / 3, 0, 0, 0, 0, 0], rtol=1e-6)


def _pool_and_mean(x, out):
    return F.adaptive_avg_pool2d(x, out).numpy(), x.mean(axis=[2, 3]).numpy()


@pytest.mark.parametrize("hw", [(56, 56), (14, 9), (5, 3), (1, 2)])
def test_adaptive_avg_pool_with_appended_mean(hw):
    x = paddle.randn([2, 3, *hw])
    got = adaptive_avg_pool2d_matmul(x, 7, append_mean=True).numpy()
    pooled, mean = _pool_and_mean(x, 7)
    assert got.shape == (2, 3, 8, 8)
    np.testing.assert_allclose(got[:, :, :7, :7], pooled, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got[:, :, 7, 7], mean, rtol=0, atol=1e-5)


@pytest.mark.parametrize("append_mean", [False, True])
def test_adaptive_avg_pool_as_matrices_traces_with_dynamic_sizes(append_mean):
    class Pool(paddle.nn.Layer):
        def forward(self, x):
            return adaptive_avg_pool2d_matmul(x, 7, append_mean=append_mean)

    static = paddle.jit.to_static(Pool(), input_spec=[InputSpec([None, 3, None, None], "float32", "x")],
                                  full_graph=True)
    for hw in [(30, 17), (7, 7)]:
        x = paddle.randn([1, 3, *hw])
        got = static(x).numpy()
        pooled, mean = _pool_and_mean(x, 7)
        np.testing.assert_allclose(got[:, :, :7, :7], pooled, rtol=0, atol=1e-5)
        if append_mean:
            np.testing.assert_allclose(got[:, :, 7, 7], mean, rtol=0, atol=1e-5)


class _WindowRoundTrip(paddle.nn.Layer):
    def __init__(self, ws, h, w):
        super().__init__()
        self.ws, self.h, self.w = ws, h, w

    def forward(self, x):
        from ppvision_hybrid.layers import window_partition, window_reverse
        return window_reverse(window_partition(x, self.ws), self.ws, self.h, self.w)


@pytest.mark.parametrize("shape, ws", [((2, 14, 21, 5), 7), ((1, 8, 8, 3), 4), ((3, 6, 12, 2), 6), ((1, 7, 7, 4), 7)])
def test_window_partition_by_gather_equals_the_transpose_form(shape, ws):
    """Eager CPU partition/reverse gather rows instead of the 6-D transpose: the same values and
    gradients (a copy either way); saved graphs keep the transpose."""
    from ppvision_hybrid.layers import window_partition, window_reverse
    x = paddle.to_tensor(np.random.RandomState(0).standard_normal(shape).astype("float32"), stop_gradient=False)
    b, h, w, c = shape
    reference = x.reshape([b, h // ws, ws, w // ws, ws, c]).transpose([0, 1, 3, 2, 4, 5]).reshape([-1, ws * ws, c])
    windows = window_partition(x, ws)
    np.testing.assert_array_equal(windows.numpy(), reference.numpy())
    np.testing.assert_array_equal(window_reverse(windows, ws, h, w).numpy(), x.numpy())
    upstream = paddle.randn(reference.shape)
    (expected,), (got,) = paddle.grad(reference, [x], upstream), paddle.grad(window_partition(x, ws), [x], upstream)
    np.testing.assert_array_equal(got.numpy(), expected.numpy())
    static = paddle.jit.to_static(_WindowRoundTrip(ws, h, w), input_spec=[InputSpec([None, h, w, c], "float32")],
                                  full_graph=True)
    ops = {op.name() for op in static.forward.concrete_program.main_program.global_block().ops}
    assert "pd_op.transpose" in ops and "pd_op.gather" not in ops, ops
    np.testing.assert_array_equal(static(x).numpy(), x.numpy())


def test_broadcast_add_is_the_plain_broadcasting_sum_in_eager_and_in_graphs():
    """Eager mode expands both operands first (Paddle's eager add is slow when one broadcasts);
    graphs keep the broadcasting add. Same values, shape and gradients either way."""
    import numpy as np
    import paddle
    from ppvision_hybrid.layers import broadcast_add
    rng = np.random.RandomState(0)
    a_np = rng.standard_normal((1, 3, 1, 5, 6)).astype("float32")
    b_np = rng.standard_normal((1, 1, 4, 1, 6)).astype("float32")
    shape = [1, 3, 4, 5, 6]
    a, b = paddle.to_tensor(a_np, dtype="float32"), paddle.to_tensor(b_np, dtype="float32")
    a.stop_gradient = False
    eager = broadcast_add(a, b, shape)
    assert list(eager.shape) == shape
    np.testing.assert_allclose(eager.numpy(), a_np + b_np, rtol=1e-6)
    eager.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.full(a_np.shape, 4.0), rtol=1e-6)  # summed over the 4
    def summed(x, y):
        return broadcast_add(x, y, shape)
    graph = paddle.jit.to_static(summed, full_graph=True)(a.detach(), b)
    np.testing.assert_allclose(graph.numpy(), a_np + b_np, rtol=1e-6)
