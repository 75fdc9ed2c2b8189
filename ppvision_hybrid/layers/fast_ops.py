"""Vectorised CPU kernels for the ops Paddle's eager mode runs slowly, built on first use.

Paddle 3.3.1's eager CPU kernels for depthwise convolutions and GELU, and a bicubic resize
built from gathers, are many times slower than what the same cores can do (docs/benchmarks.md,
"Session 9"), and the models lean on them. ``csrc/`` holds our own C++ kernels for those ops
(forward and backward), registered as Paddle custom operators (``paddle.utils.cpp_extension``). This module builds them once with the
system C++ compiler -- no network -- into ``$PPVISION_HYBRID_HOME/ops/<key>`` (default
``~/.cache/ppvision_hybrid/ops``), keyed by the source hash, the Paddle version and the CPU's
instruction sets, and loads the cached library in every later process.

Only eager CPU float32 calls use them, through one dispatch point per op in ``layers/``
(:func:`~ppvision_hybrid.layers.depthwise_conv2d`, :func:`~ppvision_hybrid.layers.gelu`,
:func:`~ppvision_hybrid.layers.bicubic_resize`); saved graphs (``paddle.jit.to_static``),
GPU tensors and other dtypes keep Paddle's standard ops, so every consumer of an exported model
still runs it. Without a compiler, or when the build fails, one line says so and the standard
ops run. ``PPVH_FAST_OPS=0`` turns the kernels off; :func:`build_fast_ops` builds them ahead of
time (install.sh does).
"""
import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings

import paddle

__all__ = ["fast_ops_enabled", "load_fast_ops", "run_fast_op", "fast_ops_dir", "build_fast_ops", "autocast_enabled",
           "eager_execution"]

_NAME = "ppvh_fast_ops"
_SOURCES = ("depthwise_conv2d.cc", "gelu.cc", "bicubic_resize.cc")
_HEADERS = ("vector_math.h",)
_CXX_FLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-math-errno"]
_CSRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc")

_lock = threading.Lock()
_state = {"loaded": False, "ops": None}


def fast_ops_enabled():
    """False when ``PPVH_FAST_OPS`` is ``0`` / ``false`` / ``off``."""
    return os.environ.get("PPVH_FAST_OPS", "1").strip().lower() not in ("0", "false", "off", "no")


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return platform.processor()


def _ld_flags():
    """Link the kernels' OpenMP calls to the Intel OpenMP runtime that Paddle's MKL and oneDNN
    use (it serves GCC's ``GOMP_*`` calls), so both share one thread pool: with a second pool
    (GNU OpenMP) the idle threads of one spin on the cores the other needs. GNU OpenMP where
    Paddle ships no libiomp5."""
    libs = os.path.join(os.path.dirname(paddle.__file__), "libs")
    if os.path.exists(os.path.join(libs, "libiomp5.so")):
        return [f"-L{libs}", "-liomp5", f"-Wl,-rpath,{libs}"]
    return ["-fopenmp"]


def _key():
    """Source hash, Paddle version, compiler flags and CPU (``-march=native``) in one key."""
    digest = hashlib.sha256()
    for name in _SOURCES + _HEADERS:
        with open(os.path.join(_CSRC, name), "rb") as f:
            digest.update(f.read())
    for part in (paddle.__version__, " ".join(_CXX_FLAGS + _ld_flags()), _cpu_flags(), platform.machine(),
                 f"{sys.version_info[0]}.{sys.version_info[1]}"):
        digest.update(part.encode())
    return f"paddle{paddle.__version__}-{digest.hexdigest()[:16]}"


def fast_ops_dir():
    """Where the built library of this source, Paddle version and CPU lives."""
    home = os.environ.get("PPVISION_HYBRID_HOME", os.path.join(os.path.expanduser("~"), ".cache", "ppvision_hybrid"))
    return os.path.join(home, "ops", _key())


def _library(directory):
    return os.path.join(directory, _NAME, _NAME + ".so")


# Run in a child interpreter, so the compiler's output goes to a log and this process
# registers the finished library only once. argv: name, C++ flags, linker flags, sources...
_BUILD_SCRIPT = """
import os, sys
from paddle.utils.cpp_extension import load
load(name=sys.argv[1], sources=sys.argv[4:], extra_cxx_cflags=sys.argv[2].split(),
     extra_ldflags=sys.argv[3].split(), build_directory=os.environ["PPVH_BUILD_DIR"], verbose=True)
"""


def _compiler():
    return shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")


def build_fast_ops(verbose=False):
    """Build the kernels into :func:`fast_ops_dir` unless already there; returns the library
    path. Raises ``RuntimeError`` (with the compiler's output) when the build fails. One build
    at a time per key (a lock file); the result appears atomically (build folder, then rename)."""
    target = fast_ops_dir()
    if os.path.exists(_library(target)):
        return _library(target)
    if _compiler() is None:
        raise RuntimeError("no C++ compiler found (install g++, or set CXX)")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with _file_lock(target + ".lock"):
        if os.path.exists(_library(target)):  # built by another process meanwhile
            return _library(target)
        staging = tempfile.mkdtemp(prefix=os.path.basename(target) + ".build-", dir=os.path.dirname(target))
        try:
            env = dict(os.environ, PPVH_BUILD_DIR=staging)
            sources = [os.path.join(_CSRC, name) for name in _SOURCES]
            cmd = [sys.executable, "-c", _BUILD_SCRIPT, _NAME, " ".join(_CXX_FLAGS), " ".join(_ld_flags()), *sources]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if verbose:
                print(done.stdout + done.stderr)
            if done.returncode != 0 or not os.path.exists(_library(staging)):
                log = os.path.join(os.path.dirname(target), "build-failed.log")
                with open(log, "w") as f:
                    f.write(" ".join(cmd) + "\n\n" + done.stdout + "\n" + done.stderr)
                raise RuntimeError(f"building the fast CPU kernels failed (compiler output: {log})")
            os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return _library(target)


@contextlib.contextmanager
def _file_lock(path):
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, the rename still keeps the cache whole
        yield
        return
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _note(message):
    print(f"ppvision_hybrid: {message}", file=sys.stderr, flush=True)


def load_fast_ops():
    """The registered op names (a tuple), or None when the kernels are off or cannot be built.
    Builds on the first call of a process that finds no cached library (about 15-30 s, with a
    one-line note); later calls return at once."""
    if not fast_ops_enabled():
        return None
    if _state["loaded"]:  # the common case, without the lock
        return _state["ops"]
    with _lock:
        if _state["loaded"]:
            return _state["ops"]
        _state["loaded"] = True
        try:
            library = _library(fast_ops_dir())
            if not os.path.exists(library):
                if _compiler() is None:
                    _note("no C++ compiler found, so depthwise convolutions use Paddle's standard CPU kernels "
                          "(slower; install g++ to build the fast ones once, or set PPVH_FAST_OPS=0 to hide this)")
                    return None
                _note(f"building the fast CPU kernels once (about 30 s) into {fast_ops_dir()}")
                library = build_fast_ops()
            with warnings.catch_warnings():  # its import warns that ccache is missing, irrelevant here
                warnings.simplefilter("ignore")
                from paddle.utils.cpp_extension.extension_utils import load_op_meta_info_and_register_op
            _state["ops"] = tuple(load_op_meta_info_and_register_op(library))
        except Exception as err:  # any failure: the standard ops, and say why in one line
            _note(f"fast CPU kernels unavailable ({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
                  "using Paddle's standard ops")
            _state["ops"] = None
        return _state["ops"]


try:  # SOT (paddle.jit.to_static's default) reads this function as True while it builds a graph
    from paddle.jit.sot.psdb import in_sot as _in_sot
except ImportError:  # Paddle 2.x: no SOT
    def _in_sot():
        return False


def eager_execution():
    """True when ops run one by one (dygraph), False while ``paddle.jit.to_static`` builds a
    graph: AST conversion (not dynamic mode) or SOT bytecode translation (dynamic mode, but the
    calls are being recorded). Graphs get the standard ops, never the custom ones."""
    return paddle.in_dynamic_mode() and not _in_sot()


def autocast_enabled():
    """Whether automatic mixed precision is on (the fast kernels are float32 only)."""
    is_enabled = getattr(paddle.amp, "is_autocast_enabled", None)
    return bool(is_enabled()) if is_enabled is not None else False


def run_fast_op(name, *args):
    """Run the registered custom op ``name`` (eager mode); its outputs as a list."""
    from paddle import _C_ops
    return _C_ops._run_custom_op(name, *args)
