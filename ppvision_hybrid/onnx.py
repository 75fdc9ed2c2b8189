"""Convert an exported Paddle inference model to ONNX and prove the file's numbers.

    ppvh-export-onnx --model_dir output/TransXNet_T --save_file TransXNet_T.onnx
    ppvh-export-onnx --model TransXNet_T --save_file TransXNet_T.onnx   # export first

(``python tools/export_onnx.py ...`` from a checkout is the same command.)

Steps: paddle2onnx converts ``inference.json``/``inference.pdmodel`` (its run-time package
installation is never triggered: the Polygraphy route that sets ``POLYGRAPHY_AUTOINSTALL_DEPS``
is not used; optional clean-up runs ``onnxoptimizer`` only when it is installed); then
ONNX Runtime runs the converted graph on random inputs at every ``--verify_shapes`` entry and
its outputs are compared with the Paddle Inference predictor on the same saved model. A
mismatch above ``--rtol`` is an error: the conversion is retried (paddle2onnx has been seen to
produce different graphs from run to run) up to ``--retries`` times, and if no attempt
verifies, no file is left behind and the exit status is 1. A conversion that paddle2onnx
cannot do at all (unsupported operator) exits with status 2 and says so.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

from .inference import create_predictor, model_files, relative_error
from .io_atomic import atomic_file

__all__ = ["ConversionError", "VerificationError", "paddle_to_onnx_bytes", "group_norm_epsilons",
           "restore_group_norm_epsilon", "remove_dead_nodes", "onnx_session", "run_onnx", "verify", "convert_and_verify",
           "main"]

#: the directory holding the ``ppvision_hybrid`` package (the conversion child imports it)
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULT_SHAPES = ((1, 3, 224, 224), (2, 3, 200, 328))


class ConversionError(RuntimeError):
    """paddle2onnx could not convert the model (e.g. an operator it does not support)."""


class VerificationError(RuntimeError):
    """The converted model's outputs differ from Paddle's."""


def _convert_in_this_process(model_dir, out_file, opset):
    """The paddle2onnx call itself (run in a child process: it aborts on unsupported ops)."""
    # Never let an optimisation step install packages at run time.
    os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"
    import paddle2onnx
    model_file, params_file = model_files(model_dir)
    # save_file=None returns the bytes and skips paddle2onnx's own optimise-and-save step.
    data = paddle2onnx.export(model_file, params_file, save_file=None, opset_version=opset,
                              auto_upgrade_opset=True, enable_onnx_checker=True,
                              enable_optimize=True)
    with open(out_file, "wb") as f:
        f.write(data)


def paddle_to_onnx_bytes(model_dir, opset=17, optimize="none", timeout=900):
    """One paddle2onnx conversion; returns the serialized ONNX model.

    paddle2onnx aborts the whole process (SIGABRT) when a graph has an operator or attribute it
    cannot convert, so the conversion runs in a child process and its log is searched for the
    reason, which :class:`ConversionError` carries.
    """
    try:
        import paddle2onnx  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ConversionError("paddle2onnx is not installed: pip install -r requirements-deploy.txt") from err
    model_files(model_dir)  # clear error for a wrong path before starting a child
    with tempfile.TemporaryDirectory(prefix="ppvh_onnx_") as tmp:
        out_file = os.path.join(tmp, "model.onnx")
        code = ("import sys; sys.path.insert(0, %r); from ppvision_hybrid.onnx import _convert_in_this_process as c; "
                "c(%r, %r, %d)" % (_PACKAGE_PARENT, os.path.abspath(model_dir), out_file, opset))
        env = dict(os.environ, POLYGRAPHY_AUTOINSTALL_DEPS="0")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, timeout=timeout)
        if proc.returncode != 0 or not os.path.isfile(out_file):
            log = proc.stdout + proc.stderr
            reasons = [line.strip() for line in log.splitlines()
                       if "[ERROR]" in line or "not supported" in line.lower() or "Error:" in line]
            reason = "; ".join(dict.fromkeys(reasons)) or log.strip()[-800:]
            raise ConversionError(f"paddle2onnx cannot convert {model_dir} (exit {proc.returncode}): {reason}")
        with open(out_file, "rb") as f:
            data = f.read()
    if not data:
        raise ConversionError(f"paddle2onnx returned an empty model for {model_dir}")
    norms = _program_epsilons(model_dir, ("group_norm", "instance_norm"))  # one read of the program
    data = restore_group_norm_epsilon(data, norms["group_norm"], instance_norms=len(norms["instance_norm"]))
    data = remove_dead_nodes(data)
    if optimize == "onnxoptimizer":
        data = _onnxoptimizer_cleanup(data)
    return data


def _program_epsilons(model_dir, op_names):
    """{op name: ``epsilon`` of each such op of a Paddle 3.x (``.json``) program, in program
    order} for every name in ``op_names``; empty lists for the 2.6 format."""
    import json
    found = {name: [] for name in op_names}
    model_file, _ = model_files(model_dir)
    if not model_file.endswith(".json"):
        return found

    def walk(node):
        if isinstance(node, dict):
            _, dot, name = str(node.get("#", "")).rpartition(".")
            if dot and name in found:
                for attr in node.get("A", []):
                    if isinstance(attr, dict) and attr.get("N") == "epsilon":
                        found[name].append(float(attr["AT"]["D"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    with open(model_file) as f:
        walk(json.load(f))
    return found


def group_norm_epsilons(model_dir):
    """``epsilon`` of every ``group_norm`` op of a Paddle 3.x (``.json``) program, in program
    order; empty for the 2.6 format (its float32 attribute converts correctly)."""
    return _program_epsilons(model_dir, ("group_norm",))["group_norm"]


def restore_group_norm_epsilon(data, epsilons, instance_norms=0):
    """Put the program's ``group_norm`` epsilons into the InstanceNormalization nodes paddle2onnx
    2.1.0 lowers GroupNorm to. For a Paddle 3.x program (float64 ``epsilon``) it writes whatever
    memory it reads instead of the value: seen 0 on most nodes, and now and then -6.5e15,
    -9.7e37 or 1.6e19, a different node on each conversion (TransXNet-T: relative error 1.5e-3
    with the zeros, 8e-2 with a huge one; two bad conversions in a row made a CI run fail).

    When the graph has exactly one InstanceNormalization per ``group_norm`` and the program has
    no ``instance_norm`` ops (``instance_norms``, whose nodes would be indistinguishable), every
    node gets its op's value in program order, whatever paddle2onnx wrote. Otherwise only values
    no norm uses (not in [1e-30, 1]) are replaced, and only when all the program's group_norm
    epsilons are equal. Nothing else is touched; verification still decides."""
    if not epsilons:
        return data
    import onnx
    from onnx import helper
    model = onnx.load_from_string(data)

    def epsilon_of(node):
        return next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)

    nodes = [n for n in model.graph.node if n.op_type == "InstanceNormalization"]
    if len(nodes) == len(epsilons) and not instance_norms:
        targets, values = nodes, epsilons
    elif len(set(epsilons)) == 1:
        targets = [n for n in nodes if not 1e-30 <= epsilon_of(n) <= 1.0]
        values = epsilons[:1] * len(targets)
    else:  # cannot tell which is which: leave it to verification
        return data
    for node, value in zip(targets, values):
        kept = [a for a in node.attribute if a.name != "epsilon"]
        del node.attribute[:]
        node.attribute.extend(kept + [helper.make_attribute("epsilon", float(value))])
    return model.SerializeToString()


def _names_read(graph, into):
    """Every value name the nodes of ``graph`` and of its subgraphs read, added to ``into``."""
    from onnx import AttributeProto
    for node in graph.node:
        into.update(node.input)
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                _names_read(attr.g, into)
            elif attr.type == AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    _names_read(sub, into)
    return into


def remove_dead_nodes(data):
    """The serialized model without the nodes whose outputs nothing reads, and without unused
    initializers. paddle2onnx 2.1.0 emits a ``Constant`` node for every ``full`` /
    ``full_int_array`` op of the program, also where the consumer's converter then writes the
    value into an attribute and never reads the constant (TransXNet-T: 145 such nodes); ONNX
    Runtime turns each into an initializer and prints one "Removing initializer ... It is not
    used by any node" warning per node when the file loads. ONNX operators have no side
    effects, so dropping them changes nothing else."""
    import onnx
    model = onnx.load_from_string(data)
    graph = model.graph
    removed = 0
    while True:
        needed = _names_read(graph, {out.name for out in graph.output})
        live = [node for node in graph.node if any(name in needed for name in node.output)]
        if len(live) == len(graph.node):
            break
        removed += len(graph.node) - len(live)
        del graph.node[:]
        graph.node.extend(live)
    needed = _names_read(graph, {out.name for out in graph.output})
    initializers = [init for init in graph.initializer if init.name in needed]
    if not removed and len(initializers) == len(graph.initializer):
        return data
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    return model.SerializeToString()


def _onnxoptimizer_cleanup(data):
    try:
        import onnx
        import onnxoptimizer
    except ImportError:
        print("[export_onnx] onnxoptimizer not installed: skipping clean-up", file=sys.stderr)
        return data
    model = onnx.load_from_string(data)
    passes = ["eliminate_deadend", "extract_constant_to_initializer",
              "eliminate_unused_initializer", "eliminate_duplicate_initializer"]
    model = onnxoptimizer.optimize(model, passes)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def onnx_session(model, threads=None):
    """ONNX Runtime CPU session from a path or serialized bytes."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def run_onnx(session, x):
    outputs = session.run(None, {session.get_inputs()[0].name: x})
    return outputs[0] if len(outputs) == 1 else outputs


def verify(data, model_dir, shapes=DEFAULT_SHAPES, rtol=1e-4, seed=0, threads=1):
    """Worst relative error of ONNX Runtime vs Paddle Inference over ``shapes``; raises on mismatch."""
    session = onnx_session(data, threads)
    predictor = create_predictor(model_dir, enable_mkldnn=False, cpu_threads=threads)
    rng = np.random.RandomState(seed)
    worst = 0.0
    for shape in shapes:
        x = rng.standard_normal(shape).astype("float32")
        expected = predictor(x)
        actual = run_onnx(session, x)
        expected = expected if isinstance(expected, list) else [expected]
        actual = actual if isinstance(actual, list) else [actual]
        if len(actual) != len(expected):
            raise VerificationError(f"ONNX model has {len(actual)} outputs, Paddle {len(expected)}")
        for a, e in zip(actual, expected):
            err = relative_error(a, e)
            worst = max(worst, err)
            if not err <= rtol:
                raise VerificationError(
                    f"ONNX Runtime differs from Paddle at input {list(shape)}: relative error "
                    f"{err:.3e} > {rtol:.1e} (output shapes {list(np.shape(a))} vs {list(np.shape(e))})")
    return worst


def convert_and_verify(model_dir, save_file, opset=17, optimize="none", shapes=DEFAULT_SHAPES,
                       rtol=1e-4, retries=3, threads=1, log=print):
    """Convert, verify, and write ``save_file`` only when verified. Returns the worst error."""
    if os.path.exists(save_file):
        os.remove(save_file)  # never leave a stale file that could be mistaken for this result
    last_error = None
    for attempt in range(1, retries + 1):
        data = paddle_to_onnx_bytes(model_dir, opset=opset, optimize=optimize)
        try:
            worst = verify(data, model_dir, shapes=shapes, rtol=rtol, threads=threads)
        except VerificationError as err:
            last_error = err
            log(f"[export_onnx] attempt {attempt}/{retries}: {err}")
            continue
        with atomic_file(save_file) as tmp, open(tmp, "wb") as f:
            f.write(data)
        log(f"[export_onnx] verified against Paddle at {[list(s) for s in shapes]}: worst relative "
            f"error {worst:.2e} (attempt {attempt}); saved {save_file}")
        return worst
    raise VerificationError(f"no verified conversion after {retries} attempts; last: {last_error}")


def _parse_shapes(text):
    shapes = []
    for item in text.split(","):
        dims = tuple(int(d) for d in item.lower().split("x"))
        if len(dims) != 4:
            raise argparse.ArgumentTypeError(f"shape '{item}' must be NxCxHxW")
        shapes.append(dims)
    return tuple(shapes)


def _export_registered(name, save_dir, pretrained=False):
    """Export a registered model with dynamic batch, height and width."""
    from .export import export_inference_model
    from .registry import create_model, get_model_spec
    spec = get_model_spec(name)
    model = create_model(name, pretrained=pretrained)
    export_inference_model(model, save_dir, image_shape=spec.default_input, dynamic_hw=True)
    return save_dir


def main(argv=None):
    parser = argparse.ArgumentParser(prog="ppvh-export-onnx", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model_dir", help="exported Paddle model (dir with inference.json/.pdmodel)")
    source.add_argument("--model", help="registered model name: export it first (random weights "
                                        "unless --pretrained), then convert")
    parser.add_argument("--pretrained", default=None, help="with --model: True or a weights path")
    parser.add_argument("--save_file", required=True, help="output .onnx path")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--optimize_tool", default="None", choices=["None", "onnxoptimizer"],
                        help="post-conversion clean-up (never installs anything)")
    parser.add_argument("--verify_shapes", type=_parse_shapes, default=DEFAULT_SHAPES,
                        help="comma-separated NxCxHxW inputs checked against Paddle "
                             "(default 1x3x224x224,2x3x200x328; the model must be exported with "
                             "dynamic H/W for sizes other than its export size)")
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    model_dir = args.model_dir
    tmp_dir = None
    if args.model:
        tmp_dir = tempfile.TemporaryDirectory(prefix="ppvh_export_")
        model_dir = tmp_dir.name
        pretrained = {"True": True, None: False}.get(args.pretrained, args.pretrained)
        _export_registered(args.model, model_dir, pretrained)
    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    try:
        convert_and_verify(model_dir, args.save_file, opset=args.opset,
                           optimize=args.optimize_tool.lower(), shapes=args.verify_shapes,
                           rtol=args.rtol, retries=args.retries, threads=threads)
    except ConversionError as err:
        print(f"[export_onnx] CONVERSION FAILED: {err}", file=sys.stderr)
        return 2
    except VerificationError as err:
        print(f"[export_onnx] VERIFICATION FAILED, no file written: {err}", file=sys.stderr)
        return 1
    finally:
        if tmp_dir is not None:
            tmp_dir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
