"""``import ppvision_hybrid`` puts the MKL inside Paddle's CPU wheels on its AVX2 path on AMD CPUs
(ppvision_hybrid.cpu_math): without it every dygraph GEMM there runs a generic path."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from ppvision_hybrid.cpu_math import OPT_OUT, use_mkl_avx2_on_amd

AMD = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\n"
INTEL = AMD.replace("AuthenticAMD", "GenuineIntel")
AMD_NO_AVX2 = AMD.replace(" avx2", "")


@pytest.mark.parametrize("cpu, environ, sets, expected", [
    (AMD, {}, True, "5"),
    (INTEL, {}, False, None),
    (AMD_NO_AVX2, {}, False, None),  # the AVX2 path would stop at an illegal instruction
    (AMD, {"MKL_DEBUG_CPU_TYPE": "2"}, False, "2"),  # the user's own setting wins
    (AMD, {OPT_OUT: "0"}, False, None),
])
def test_mkl_avx2_path_only_on_amd_with_avx2_and_never_over_the_user(tmp_path, cpu, environ, sets, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(cpu)
    environ = dict(environ)
    assert use_mkl_avx2_on_amd(environ, str(cpuinfo)) is sets
    assert environ.get("MKL_DEBUG_CPU_TYPE") == expected


def test_without_cpuinfo_nothing_is_set(tmp_path):
    environ = {}
    assert use_mkl_avx2_on_amd(environ, str(tmp_path / "missing")) is False and environ == {}


def _variable_after_import(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_DEBUG_CPU_TYPE", OPT_OUT)}
    env.update(PYTHONPATH=ROOT, **extra)
    code = "import os, ppvision_hybrid; print(os.environ.get('MKL_DEBUG_CPU_TYPE'))"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_importing_the_package_sets_it_on_this_machine_as_its_cpu_needs():
    with open("/proc/cpuinfo") as f:
        first = f.read().split("\n\n")[0]
    amd_avx2 = "AuthenticAMD" in first and " avx2" in first
    assert _variable_after_import() == ("5" if amd_avx2 else "None")
    assert _variable_after_import(**{OPT_OUT: "0"}) == "None"
