#!/usr/bin/env bash
# The test command (README, .ci/run): the whole suite on the CPU, two worker processes.
# -rs prints every skip with its reason; a skip whose reason is not on the allowlist in
# tests/conftest.py (no GPU, an opt-in variable, an optional extra) fails the run.
set -euo pipefail
cd "$(dirname "$0")"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec python3 -m pytest -n 2 -q -p no:cacheprovider -rs tests "$@"
