#!/usr/bin/env bash
# One command installs everything ppvision-hybrid and its test suite use (CPU, Python 3.8-3.12),
# into the Python that runs it (activate your virtual environment first, or set PYTHON=...):
#   bash install.sh
# The PyPI paddledet/paddleseg wheels declare stale pins (numpy<1.24, sklearn==0.0) that cannot
# install beside Paddle 3.x, so they go in with --no-deps and their real needs (everything they
# import at package import) come from requirements-dense.txt. Last, the package itself goes in
# editable, so `python -m ppvision_hybrid.dense <toolkit script>` works from any directory (a
# PaddleDetection / PaddleSeg checkout's included). See README "Install" for the GPU variant.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
$PY -m pip install -r requirements.txt
for extra in requirements-deploy.txt requirements-dense.txt; do
  if [ -f "$extra" ]; then $PY -m pip install -r "$extra"; fi
done
if [ -f requirements-toolkits.txt ]; then $PY -m pip install --no-deps -r requirements-toolkits.txt; fi
$PY -m pip install --no-deps -e .
# Guard: nothing above may have replaced the pinned numpy / opencv, and the toolkits must import.
$PY - <<'PYEOF'
import numpy, cv2
assert numpy.__version__.startswith("1."), f"numpy {numpy.__version__}: ppvision-hybrid needs numpy<2"
import ppdet, paddleseg  # a missing dependency of theirs fails the install here, not in the tests
print(f"ppvision-hybrid install OK: numpy {numpy.__version__}, opencv {cv2.__version__}")
PYEOF
# The fast CPU kernels (ppvision_hybrid/layers/fast_ops.py): built once into the user cache with the
# system C++ compiler, no network. Without a compiler the models run Paddle's standard ops and
# say so in one line; this step never fails the install.
PYTHONPATH=. $PY -c "from ppvision_hybrid.layers import fast_ops; print('fast CPU kernels:', fast_ops.load_fast_ops() or 'not built (standard ops)')" || true
