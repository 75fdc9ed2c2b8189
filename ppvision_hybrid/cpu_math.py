"""CPU math library settings that Paddle's wheels leave at a slow default.

The MKL inside Paddle's CPU wheels picks its code path by CPU vendor: on AMD processors it takes
a generic path several times slower than its AVX2 one, for every dygraph matmul and conv
(im2col + GEMM) and Paddle Inference with oneDNN off. ``MKL_DEBUG_CPU_TYPE=5`` selects the AVX2
path; MKL reads it at its first call, so ``import ppvision_hybrid`` sets it (see
:func:`use_mkl_avx2_on_amd`). Measurements: docs/benchmarks.md, "Issue 25 goals, one sitting".
"""
import os

#: ``PPVH_MKL_AVX2=0`` leaves MKL's choice alone
OPT_OUT = "PPVH_MKL_AVX2"


def use_mkl_avx2_on_amd(environ=None, cpuinfo="/proc/cpuinfo"):
    """Set ``MKL_DEBUG_CPU_TYPE=5`` in ``environ`` (default ``os.environ``) on an AMD CPU with
    AVX2, unless the variable is set already or ``PPVH_MKL_AVX2=0``. Takes effect when it runs
    before the process's first MKL call (importing paddle makes none). Returns True when it set
    the variable."""
    environ = os.environ if environ is None else environ
    if "MKL_DEBUG_CPU_TYPE" in environ or environ.get(OPT_OUT, "1") == "0":
        return False
    try:
        with open(cpuinfo) as f:
            first_cpu = f.read(1 << 16).split("\n\n")[0]
    except OSError:  # not Linux: leave MKL as it is
        return False
    flags = next((line.split(":", 1)[1].split() for line in first_cpu.splitlines()
                  if line.startswith("flags")), [])
    if "AuthenticAMD" not in first_cpu or "avx2" not in flags:
        return False
    environ["MKL_DEBUG_CPU_TYPE"] = "5"
    return True
