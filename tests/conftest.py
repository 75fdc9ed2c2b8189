import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import pytest  # noqa: E402

# The suite is sized for 2 CPU cores; PPVH_FULL_TESTS=1 widens the slow checks (export round
# trips, state-dict reload) from the smallest variant of each family to every variant.
FULL = os.environ.get("PPVH_FULL_TESTS", "0") == "1"


def randomize_batch_norms(model, rng, shift_std=1.0, min_variance=0.2):
    """Give every BatchNorm2D of ``model`` non-trivial statistics and affine parameters (means and
    biases ``N(0, shift_std)``, variances above ``min_variance``, weights in [0.5, 1.5)), so
    saved graphs that fold BatchNorms into convs are checked against real arithmetic."""
    import paddle
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):
            c = layer._mean.shape[0]
            layer._mean.set_value((shift_std * rng.standard_normal(c)).astype("float32"))
            layer._variance.set_value((rng.rand(c) + min_variance).astype("float32"))
            layer.weight.set_value((rng.rand(c) + 0.5).astype("float32"))
            layer.bias.set_value((shift_std * rng.standard_normal(c)).astype("float32"))


@pytest.fixture(autouse=True)
def _seed():
    import paddle
    import numpy as np
    paddle.seed(0)
    np.random.seed(0)
    yield
