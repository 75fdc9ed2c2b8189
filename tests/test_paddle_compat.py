"""The Paddle 2.6 shims (ppvision_hybrid/paddle_compat.py) under the main environment (3.3.1):
each is a no-op on 3.x paths, and each 2.6 failure it handles is reproduced here where 3.3.1
can reproduce it (the legacy static graph via OldIrGuard; missing kwargs via monkeypatching)."""
import ast
import os

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from ppvision_hybrid import paddle_compat
from ppvision_hybrid.layers import init as layer_init
from conftest import ROOT

TOOLS = ["train.py", "eval.py", "infer.py", "export_model.py"]
_SEEN = {}  # module level: Paddle 2.6's to_static cannot write to a closure variable


def test_version_parse():
    assert paddle_compat._parse_version("2.6.2") == (2, 6, 2)
    assert paddle_compat._parse_version("3.0.0rc1") == (3, 0, 0)
    assert paddle_compat._parse_version("0.0.0") == (0, 0, 0)


def test_pad_arg_is_identity_in_dygraph_and_pir():
    pads = [0, 1, 0, 2]
    assert paddle_compat.pad_arg(pads) is pads
    _SEEN.clear()

    def padded(x):
        H, W = x.shape[2], x.shape[3]
        arg = paddle_compat.pad_arg([0, (4 - W % 4) % 4, 0, (4 - H % 4) % 4])
        _SEEN["is_list"] = isinstance(arg, list)
        return F.pad(x, arg)

    static = paddle.jit.to_static(padded, input_spec=[paddle.static.InputSpec([None, 3, None, None])],
                                  full_graph=True)
    out = static(paddle.ones([1, 3, 5, 6]))
    assert out.shape == [1, 3, 8, 8] and float(out.sum()) == 90.0
    # 3.x (PIR) sees the plain list, unchanged; 2.6's legacy to_static gets the tensor form.
    assert _SEEN["is_list"] == (not paddle_compat.IS_PADDLE_2)


def _legacy_pad_program(use_shim):
    main, start = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, start):
        x = paddle.static.data("x", [-1, 3, -1, -1], "float32")
        assert paddle_compat.in_legacy_static_mode()
        H, W = paddle.shape(x)[2], paddle.shape(x)[3]  # 0-d int32, as 2.6's to_static gives
        pads = [0, (4 - W % 4) % 4, 0, (4 - H % 4) % 4]
        y = F.pad(x, paddle_compat.pad_arg(pads) if use_shim else pads)
    return main, start, y


@pytest.mark.skipif(not hasattr(getattr(paddle, "pir_utils", None), "OldIrGuard"),
                    reason="needs paddle.pir_utils.OldIrGuard (Paddle 3.x)")
def test_pad_arg_fixes_symbolic_pads_in_the_legacy_program():
    paddle.enable_static()
    try:
        with paddle.pir_utils.OldIrGuard():
            with pytest.raises(TypeError, match="_set_int32s_attr"):
                _legacy_pad_program(use_shim=False)  # the Paddle 2.6 export failure
            main, start, y = _legacy_pad_program(use_shim=True)
            exe = paddle.static.Executor()
            exe.run(start)
            out, = exe.run(main, feed={"x": np.ones([1, 3, 5, 6], "float32")}, fetch_list=[y])
    finally:
        paddle.disable_static()
    assert out.shape == (1, 3, 8, 8) and out.sum() == 90.0


@pytest.mark.parametrize("shape", [[64, 3, 3, 3], [32, 1, 7, 7], [48, 96]])
def test_kaiming_fan_out_fallback_draws_the_same_values(shape, monkeypatch):
    p1 = paddle.create_parameter(shape, "float32")
    p2 = paddle.create_parameter(shape, "float32")
    paddle.seed(7)
    layer_init.kaiming_normal_fan_out_(p1)  # 3.x: KaimingNormal(mode="fan_out")
    monkeypatch.setattr(layer_init, "accepts_kwarg", lambda func, name: False)  # as on 2.6
    paddle.seed(7)
    layer_init.kaiming_normal_fan_out_(p2)
    np.testing.assert_array_equal(p1.numpy(), p2.numpy())


def test_adamw_without_amsgrad_support(monkeypatch):
    import ppvision_hybrid.optim as optim
    model = paddle.nn.Linear(4, 2)
    opt, _, _ = optim.build_optimizer({"name": "AdamW", "lr": 0.01}, model, 1, 1)
    assert isinstance(opt, paddle.optimizer.AdamW)
    monkeypatch.setattr(optim, "accepts_kwarg", lambda func, name: False)  # as on 2.6
    opt, _, _ = optim.build_optimizer({"name": "AdamW", "lr": 0.01}, model, 1, 1)
    assert isinstance(opt, paddle.optimizer.AdamW)
    with pytest.raises(ValueError, match="amsgrad"):
        optim.build_optimizer({"name": "AdamW", "lr": 0.01, "amsgrad": True}, model, 1, 1)


def test_accepts_kwarg():
    assert paddle_compat.accepts_kwarg(paddle.nn.initializer.Normal, "std")
    assert not paddle_compat.accepts_kwarg(paddle.nn.initializer.Normal, "no_such_argument")


@pytest.mark.parametrize("tool", TOOLS)
def test_tools_import_zlib_before_anything_else(tool):
    tree = ast.parse(open(os.path.join(ROOT, "tools", tool)).read())
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert isinstance(imports[0], ast.Import) and imports[0].names[0].name == "zlib", tool


def test_zlib_order_check(monkeypatch):
    # sys.modules keeps import order; check the helper on stand-in module tables.
    import types
    for order, expected in ((["zlib", "paddle"], True), (["paddle", "zlib"], False),
                            (["paddle"], False), (["zlib"], True)):
        fake_sys = types.SimpleNamespace(modules={name: None for name in order})
        monkeypatch.setattr(paddle_compat, "sys", fake_sys)
        assert paddle_compat.zlib_imported_before_paddle() is expected, order
