import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import pytest  # noqa: E402

# The suite is sized for 2 CPU cores; PPVH_FULL_TESTS=1 widens the slow checks (export round
# trips, state-dict reload) from the smallest variant of each family to every variant.
FULL = os.environ.get("PPVH_FULL_TESTS", "0") == "1"


@pytest.fixture(autouse=True)
def _seed():
    import paddle
    import numpy as np
    paddle.seed(0)
    np.random.seed(0)
    yield
