"""The install and the suite's rules: everything the toolkits import is in our requirement files,
a dependency that fails to import fails the run, and a skip outside the allowlist (conftest.py)
fails the run, with and without pytest-xdist."""
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import SKIP_ALLOWLIST, allowed_skip

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
REQUIREMENT_FILES = ["requirements.txt", "requirements-deploy.txt", "requirements-dense.txt",
                     "requirements-toolkits.txt"]
#: installed with --no-deps (install.sh): their declared dependencies are not ours
NO_DEPS = {"paddledet", "paddleseg"}

#: sitecustomize that makes the modules named in PPVH_BLOCK_MODULES fail to import, as they
#: would in an environment where they were never installed
BLOCKER = textwrap.dedent("""
    import os, sys
    _BLOCKED = set(filter(None, os.environ.get("PPVH_BLOCK_MODULES", "").split(",")))

    class _Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in _BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _Blocker())
""")


def _listed_requirements():
    names = []
    for fname in REQUIREMENT_FILES:
        with open(os.path.join(ROOT, fname)) as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if line and not line.startswith("-"):
                    names.append(canonicalize_name(Requirement(line).name))
    return names


def _closure(names):
    """``names`` and, transitively, what their installed metadata requires (extras excluded)."""
    from importlib import metadata
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in NO_DEPS:
            continue
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # reported by the caller if something imported needs it
        for spec in requires:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def test_everything_the_toolkits_import_is_in_our_requirements(tmp_path):
    """``import ppdet`` / ``import paddleseg`` (as installed) may import only distributions that
    our requirement files list or that a listed one depends on. This fails when a requirement is
    missing even where the package happens to be installed (the system Python had requests)."""
    probe = textwrap.dedent("""
        import json, sys
        before = set(sys.modules)
        import ppdet, paddleseg
        tops = sorted({n.split(".")[0] for n in set(sys.modules) - before})
        files = {t: getattr(sys.modules.get(t), "__file__", None) for t in tops}
        print("MODULES " + json.dumps(files))
    """)
    out = subprocess.run([sys.executable, "-c", probe], cwd=str(tmp_path), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    files = json.loads([l for l in out.stdout.splitlines() if l.startswith("MODULES ")][-1][8:])
    from importlib import metadata
    owners = metadata.packages_distributions()
    allowed = _closure(_listed_requirements())
    missing = {}
    for top, path in files.items():
        if top in sys.stdlib_module_names or top.startswith("_"):
            continue
        dists = owners.get(top)
        if not dists:
            # interpreter-made modules (cython_runtime, ...) have no file; a file in
            # site-packages without an owning distribution would be an unexplained install
            assert not (path and "site-packages" in path), f"{top} ({path}) has no distribution"
            continue
        if not any(canonicalize_name(d) in allowed for d in dists):
            missing[top] = dists
    assert not missing, (f"imported at `import ppdet, paddleseg` but in no requirement file (nor a "
                         f"dependency of one): {missing}; add them to requirements-dense.txt")
    assert {"requests", "pycocotools", "pandas"} <= allowed


def _run_pytest(args, cwd, block=(), timeout=600):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(cwd), TESTS, ROOT]),
               PPVH_BLOCK_MODULES=",".join(block), OMP_NUM_THREADS="1")
    with open(os.path.join(str(cwd), "sitecustomize.py"), "w") as f:
        f.write(BLOCKER)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs"] + args,
                          cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout)


def test_a_missing_required_dependency_fails_the_run(tmp_path):
    """Without `requests` (what a fresh venv lacked), the dense and compat modules fail to
    collect: the run fails instead of skipping them."""
    out = _run_pytest([os.path.join(TESTS, "test_compat.py"), os.path.join(TESTS, "test_dense.py"),
                       "--collect-only", "-q"], tmp_path, block=["requests"])
    text = out.stdout + out.stderr
    assert out.returncode not in (0, 5), text[-3000:]
    assert "No module named 'requests'" in text, text[-3000:]
    assert "2 errors" in text, text[-3000:]


def test_allowlist_matches_the_suites_skip_messages():
    assert allowed_skip("needs a CUDA build of Paddle (paddlepaddle-gpu) and a GPU") == "no GPU"
    assert allowed_skip("2-process CPU launch (~20 s); set PPVH_DIST_TESTS=1") is not None
    assert allowed_skip("largest odd size checked on the smallest variant per family "
                        "(PPVH_FULL_TESTS=1 for all)") is not None
    assert allowed_skip("paddlehub is optional (deploy/paddlehub/requirements.txt)") is not None
    assert allowed_skip("torch is not part of install.sh (the authors' side only)") is not None
    assert allowed_skip("opt-in: PPVH_PADDLECLAS=<PaddleClas checkout>") is not None
    for reason in ("could not import 'paddle2onnx': No module named 'paddle2onnx'",
                   "no oneDNN in this Paddle build", "reference data not present on this machine",
                   "could not import 'paddlehub': No module named 'requests'"):
        assert allowed_skip(reason) is None, reason
    assert len(SKIP_ALLOWLIST) == 7


@pytest.mark.parametrize("workers", [0, 2])
def test_a_skip_outside_the_allowlist_fails_the_run(tmp_path, workers):
    (tmp_path / "test_listed.py").write_text(textwrap.dedent("""
        import pytest

        def test_opt_in():
            pytest.skip("slow sweep (PPVH_FULL_TESTS=1 for all)")

        def test_runs():
            assert 1 + 1 == 2
    """))
    (tmp_path / "test_unlisted.py").write_text(textwrap.dedent("""
        import pytest
        requests = pytest.importorskip("requests")  # installed by install.sh: must not skip

        def test_uses_requests():
            assert requests
    """))
    (tmp_path / "test_unlisted_runtime.py").write_text(textwrap.dedent("""
        import pytest

        def test_data_file():
            pytest.skip("reference data not beside the checkout")
    """))
    xdist = ["-n", str(workers)] if workers else []
    listed = _run_pytest(["-p", "conftest", "test_listed.py"] + xdist, tmp_path, block=["requests"])
    assert listed.returncode == 0, listed.stdout[-3000:]
    assert "1 passed, 1 skipped" in listed.stdout and "UNLISTED SKIP" not in listed.stdout
    everything = _run_pytest(["-p", "conftest", "."] + xdist, tmp_path, block=["requests"])
    text = everything.stdout
    assert everything.returncode == 1, text[-3000:]
    assert re.search(r"UNLISTED SKIP test_unlisted\.py: could not import 'requests'", text), text[-3000:]
    assert "UNLISTED SKIP test_unlisted_runtime.py::test_data_file: reference data" in text, text[-3000:]
    assert "SKIPPED" in text  # -rs prints every skip reason, listed or not
