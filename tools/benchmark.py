"""Latency and throughput of every backend for registered models (a thin wrapper: the logic is
:mod:`ppvision_hybrid.benchmark`; installed as ``ppvh-benchmark``, same flags).

    python tools/benchmark.py                                # smallest variant of each family
    python tools/benchmark.py --models TransXNet_T --batch 8 --threads 2 --write
"""
import zlib  # noqa: F401  (before paddle: see ppvision_hybrid/paddle_compat.py)
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppvision_hybrid.cli import benchmark as main  # noqa: E402  (one error line per failure)

if __name__ == "__main__":
    sys.exit(main())
