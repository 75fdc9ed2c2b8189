#!/usr/bin/env bash
# One command installs everything ppvision-hybrid and its test suite use (CPU, Python 3.8-3.12).
#   bash install.sh
# The PyPI paddledet/paddleseg wheels declare stale pins (numpy<1.24, sklearn==0.0) that cannot
# install beside Paddle 3.x, so they go in with --no-deps and their real needs come from
# requirements-dense.txt. See README "Install" for the GPU variant.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
$PY -m pip install -r requirements.txt
for extra in requirements-deploy.txt requirements-dense.txt; do
  if [ -f "$extra" ]; then $PY -m pip install -r "$extra"; fi
done
if [ -f requirements-toolkits.txt ]; then $PY -m pip install --no-deps -r requirements-toolkits.txt; fi
# Guard: nothing above may have replaced the pinned numpy / opencv.
$PY - <<'PYEOF'
import numpy, cv2
assert numpy.__version__.startswith("1."), f"numpy {numpy.__version__}: ppvision-hybrid needs numpy<2"
print(f"ppvision-hybrid install OK: numpy {numpy.__version__}, opencv {cv2.__version__}")
PYEOF
# The fast CPU kernels (ppvision_hybrid/layers/fast_ops.py): built once into the user cache with the
# system C++ compiler, no network. Without a compiler the models run Paddle's standard ops and
# say so in one line; this step never fails the install.
PYTHONPATH=. $PY -c "from ppvision_hybrid.layers import fast_ops; print('fast CPU kernels:', fast_ops.load_fast_ops() or 'not built (standard ops)')" || true
