"""``import ppvision_hybrid`` keeps freed tensor-sized blocks in glibc's heap
(ppvision_hybrid.cpu_memory): without it every call faults its activations' pages in afresh."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from ppvision_hybrid.cpu_memory import (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, MMAP_THRESHOLD, OPT_OUT,
                                        TRIM_THRESHOLD, keep_freed_memory)


class FakeLibc:
    def __init__(self, accepts=True):
        self.calls, self.accepts = [], accepts

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return 1 if self.accepts else 0


@pytest.mark.parametrize("environ, applied", [
    ({}, True),
    ({OPT_OUT: "0"}, False),
    ({"MALLOC_TRIM_THRESHOLD_": "1000000"}, False),  # the user's own setting wins
    ({"MALLOC_MMAP_THRESHOLD_": "65536"}, False),
    ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}, False),
    ({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2"}, True),  # a tunable of something else
])
def test_settings_only_where_the_user_has_none(environ, applied):
    libc = FakeLibc()
    assert keep_freed_memory(dict(environ), libc) is applied
    expected = [(M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)] if applied else []
    assert libc.calls == expected


def test_values_are_ones_glibc_accepts():
    assert MMAP_THRESHOLD == 32 * 2 ** 20  # glibc's maximum on 64-bit systems
    assert 0 < TRIM_THRESHOLD < 2 ** 31  # mallopt takes a C int


def test_a_refused_setting_is_reported():
    assert keep_freed_memory({}, FakeLibc(accepts=False)) is False


def _applied_after_import(**extra):
    env = {k: v for k, v in os.environ.items() if k != OPT_OUT and not k.startswith("MALLOC_")}
    env.update(PYTHONPATH=ROOT, **extra)
    code = ("import ppvision_hybrid.cpu_memory as m, ctypes; "
            "print(m.keep_freed_memory({}) if m._glibc() else 'no glibc')")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_glibc_here_takes_both_settings():
    assert _applied_after_import() in ("True", "no glibc")


def test_import_applies_it_and_the_opt_out_is_honoured():
    """The import's own call: mallopt counted through a wrapper installed before the import."""
    env = {k: v for k, v in os.environ.items() if k != OPT_OUT and not k.startswith("MALLOC_")}
    env.update(PYTHONPATH=ROOT)
    probe = ("import ctypes; calls = []; real = ctypes.CDLL\n"
             "class Counting:\n"
             "    def __init__(self, *a, **k): self._lib = real(*a, **k)\n"
             "    def __getattr__(self, name):\n"
             "        attr = getattr(self._lib, name)\n"
             "        if name != 'mallopt': return attr\n"
             "        return lambda *a: (calls.append(a), attr(*a))[1]\n"
             "ctypes.CDLL = Counting\n"
             "import ppvision_hybrid, ppvision_hybrid.cpu_memory as m\n"
             "print(len(calls), m._glibc() is not None)")

    def counted(**extra):
        return subprocess.run([sys.executable, "-c", probe], env=dict(env, **extra), capture_output=True,
                              text=True, check=True).stdout.split()
    calls, has_glibc = counted()
    assert calls == ("2" if has_glibc == "True" else "0")
    assert counted(**{OPT_OUT: "0"})[0] == "0"
