"""The repository's shape: imports go one way (docs/architecture.md), the console scripts resolve
to package functions, and nothing points at files outside the repository."""
import ast
import importlib
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "ppvision_hybrid")

#: the layers of docs/architecture.md, bottom first; a unit may import its own layer or lower
LAYERS = [
    ("base", {"paddle_compat", "timing", "compat", "data", "datasets", "optim", "losses",
              "losses_distillation", "losses_token_label", "metrics", "inference_yml", "pth",
              "io_atomic", "cli_errors", "cpu_math", "cpu_memory", "preprocess"}),
    ("building blocks and the registry", {"layers", "registry", "weights"}),
    ("models", {"models"}),
    ("tools over any model", {"flops", "hub", "export", "inference", "onnx", "convert", "predict", "benchmark"}),
    ("consumers", {"engine", "adapters", "dense", "paddleclas", "paddleclas_plugin", "cli", "__init__"}),
]
RANK = {unit: rank for rank, (_, units) in enumerate(LAYERS) for unit in units}
#: the registry finds the families by importing ``models`` inside its list/lookup functions
ALLOWED_UPWARD = {("registry", "models")}


def _unit(path, package=PACKAGE):
    rel = os.path.relpath(path, package).split(os.sep)
    return rel[0] if len(rel) > 1 else rel[0][:-3]


def _imported_units(path, package=PACKAGE):
    parts = os.path.relpath(path, package)[:-3].split(os.sep)
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = parts[:-1][:len(parts) - node.level] if node.level > 1 else parts[:-1]
            target = base + (node.module.split(".") if node.module else [])
            found.update([target[0]] if target else [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ppvision_hybrid."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("ppvision_hybrid."))
    return found


def _package_files():
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def test_every_package_unit_has_a_layer():
    units = {_unit(p) for p in _package_files()}
    assert units <= set(RANK), f"add these to LAYERS and docs/architecture.md: {sorted(units - set(RANK))}"


def test_imports_go_one_way():
    upward = []
    for path in _package_files():
        unit = _unit(path)
        for target in _imported_units(path):
            if target in RANK and RANK[target] > RANK[unit] and (unit, target) not in ALLOWED_UPWARD:
                upward.append(f"{os.path.relpath(path, ROOT)} imports {target} "
                              f"({LAYERS[RANK[unit]][0]} -> {LAYERS[RANK[target]][0]})")
    assert not upward, upward


#: the deploy side: what ``ppvision_hybrid.predict`` (deploy/python/predict_cls.py) imports; none of
#: them may reach the model code, directly or through each other
MODEL_FREE = {"predict", "preprocess", "inference", "timing", "cli_errors", "cpu_math", "cpu_memory", "__init__"}
MODEL_CODE = {"models", "layers", "registry", "weights", "flops", "export", "onnx", "engine", "adapters"}


def _unit_imports():
    graph = {}
    for path in _package_files():
        graph.setdefault(_unit(path), set()).update(_imported_units(path))
    return graph


def test_model_free_modules_never_import_model_code():
    graph = _unit_imports()
    for unit in MODEL_FREE:
        seen, todo = set(), [unit]
        while todo:
            for target in graph.get(todo.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        assert not seen & MODEL_CODE, f"{unit} reaches model code: {sorted(seen & MODEL_CODE)}"
        assert seen <= MODEL_FREE, f"{unit} imports {sorted(seen - MODEL_FREE)}: add it to MODEL_FREE if model-free"


def test_lazy_package_imports_model_code_only_on_use():
    """``import ppvision_hybrid.predict`` loads no model code and no paddle.nn layers of ours;
    the public names still work and register every family on first use."""
    import subprocess
    import sys
    code = ("import sys, ppvision_hybrid.predict, ppvision_hybrid.preprocess\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('ppvision_hybrid'))\n"
            "print(loaded)\n"
            "assert not [m for m in loaded if m.split('.')[1:2] and m.split('.')[1] in %r], loaded\n"
            "import ppvision_hybrid as pvh\n"
            "names = pvh.list_models()\n"
            "assert len(pvh.list_families()) >= 5 and 'transxnet' in pvh.list_families(), pvh.list_families()\n"
            "assert 'MixFormer_B0' in names and pvh.create_model('MixFormer_B0', class_num=3) is not None\n"
            "assert callable(pvh.model_info) and callable(pvh.load_pretrained) and pvh.models.__name__\n"
            "print('OK')\n") % (sorted(MODEL_CODE),)
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr[-2000:]


def test_the_import_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "ppvision_hybrid" / "layers" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from ..engine import Engine\nfrom ..paddle_compat import pad_arg\n"
                   "import ppvision_hybrid.adapters.seg\n")
    package = str(tmp_path / "ppvision_hybrid")
    assert _unit(str(bad), package) == "layers"
    assert _imported_units(str(bad), package) == {"engine", "paddle_compat", "adapters"}


def _console_scripts():
    try:
        import tomllib
    except ImportError:  # Python < 3.11: read the table by hand (one "name = "module:function"" a line)
        text = open(os.path.join(ROOT, "pyproject.toml")).read()
        table = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
        return dict(re.findall(r'^([\w-]+)\s*=\s*"([^"]+)"', table, re.M))
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]["scripts"]


#: every user command: tools/<file>.py (or deploy/python/predict_cls.py) -> its console script
USER_COMMANDS = {"train": "ppvh-train", "eval": "ppvh-eval", "infer": "ppvh-infer", "model_info": "ppvh-model-info",
                 "export_onnx": "ppvh-export-onnx", "export_model": "ppvh-export",
                 "convert_weights": "ppvh-convert-weights", "benchmark": "ppvh-benchmark",
                 "predict_cls": "ppvh-predict-cls", "train_det": "ppvh-train-det", "eval_det": "ppvh-eval-det",
                 "export_det": "ppvh-export-det", "train_seg": "ppvh-train-seg", "eval_seg": "ppvh-eval-seg",
                 "export_seg": "ppvh-export-seg"}
#: checkout-only tools: gen_configs.py rewrites the checkout's configs/ (a maintainer's tool)
CHECKOUT_ONLY = {"gen_configs"}


def test_console_scripts_point_at_package_functions():
    scripts = _console_scripts()
    tools = {name[:-3] for name in os.listdir(os.path.join(ROOT, "tools")) if name.endswith(".py")}
    assert tools - CHECKOUT_ONLY <= set(USER_COMMANDS), f"a tool without a console script: {tools - set(USER_COMMANDS)}"
    assert set(USER_COMMANDS.values()) <= set(scripts), sorted(set(USER_COMMANDS.values()) - set(scripts))
    for name, target in scripts.items():
        module, function = target.split(":")
        assert module.startswith("ppvision_hybrid"), (name, target)
        assert callable(getattr(importlib.import_module(module), function)), (name, target)


def test_every_console_script_answers_help_quickly(capsys):
    """``<script> --help`` of every entry exits 0 with a usage text (in-process, as the installed
    wrapper calls it); the tools/*.py wrappers are these same functions."""
    import time
    for name, target in sorted(_console_scripts().items()):
        module, function = target.split(":")
        command = getattr(importlib.import_module(module), function)
        start = time.perf_counter()
        try:
            command(["--help"])
        except SystemExit as exit_:
            assert exit_.code in (0, None), (name, exit_.code)
        else:
            raise AssertionError(f"{name} --help did not exit")
        assert "usage:" in capsys.readouterr().out, name
        assert time.perf_counter() - start < 30, name


def test_tools_are_thin_wrappers_of_the_console_functions():
    scripts = _console_scripts()
    for tool, script in USER_COMMANDS.items():
        path = os.path.join(ROOT, "deploy", "python", "predict_cls.py") if tool == "predict_cls" else \
            os.path.join(ROOT, "tools", f"{tool}.py")
        text = open(path).read()
        module, function = scripts[script].split(":")
        assert len(text.splitlines()) <= 25, f"{path}: logic belongs in the package"
        assert re.search(rf"from ppvision_hybrid\.(cli import {function}|predict import main)\b", text), path


def test_model_info_console_function_prints_the_table(capsys):
    from ppvision_hybrid.flops import main
    assert main(["MixFormer_B0"]) == 0
    assert "| MixFormer_B0 | 3x224x224 | 5.099 | 0.402 | 5.099 | 0.402 |" in capsys.readouterr().out


def test_nothing_points_outside_the_repository():
    # issue 24's acceptance greps the tree for the project-material folder ("shared" + "/"); "[/]" keeps
    # this pattern from matching its own line
    pattern = re.compile(r"shared[/]|[/]work[/]")
    hits = []
    for top in ("ppvision_hybrid", "tests", "docs", "tools", "configs", "benchmarks", "deploy", "README.md"):
        path = os.path.join(ROOT, top)
        files = [path] if os.path.isfile(path) else [os.path.join(d, n) for d, _, ns in os.walk(path) for n in ns]
        for file in files:
            if file.endswith((".py", ".md", ".yml", ".yaml", ".txt", ".toml", ".sh")) and file != __file__:
                with open(file, errors="replace") as f:
                    hits += [f"{os.path.relpath(file, ROOT)}:{i}" for i, line in enumerate(f, 1) if pattern.search(line)]
    assert not hits, hits
