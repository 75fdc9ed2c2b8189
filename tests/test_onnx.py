"""Our ONNX files load in ONNX Runtime without warnings (issue 25, goal 0) and keep their numbers.

paddle2onnx 2.1.0 leaves a Constant node for values it writes into attributes, which ONNX Runtime
reported as one "Removing initializer ... not used" warning each (145 for TransXNet-T);
``ppvision_hybrid.onnx.remove_dead_nodes`` drops them after every conversion."""
import numpy as np
import paddle

from ppvision_hybrid.export import export_inference_model
from ppvision_hybrid.models.transxnet import TransXNet


def _tiny_transxnet():
    paddle.seed(0)
    model = TransXNet(depths=[1, 1, 1, 1], dims=[16, 32, 48, 64], num_heads=[1, 1, 2, 2], num_groups=[2, 2, 2, 2],
                      mlp_ratios=[2, 2, 2, 2], class_num=10)
    model.eval()
    return model


def test_exported_onnx_file_loads_without_warnings_and_matches_paddle(tmp_path, capfd):
    import onnxruntime as ort
    from ppvision_hybrid.onnx import convert_and_verify, run_onnx
    model_dir, onnx_file = str(tmp_path / "model"), str(tmp_path / "model.onnx")
    model = _tiny_transxnet()
    export_inference_model(model, model_dir, dynamic_hw=True)
    # verified against the Paddle Inference predictor inside, at both shapes
    worst = convert_and_verify(model_dir, onnx_file, shapes=[(1, 3, 64, 64), (2, 3, 64, 96)], log=lambda *a: None)
    assert worst <= 1e-4
    capfd.readouterr()
    session = ort.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])  # default logging: warnings on
    x = np.random.RandomState(0).standard_normal((2, 3, 64, 64)).astype("float32")
    got = run_onnx(session, x)
    err = capfd.readouterr().err
    assert "Removing initializer" not in err and "[W:onnxruntime" not in err, err[:2000]
    with paddle.no_grad():
        expected = model(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))


def test_onnx_dead_node_removal_keeps_live_nodes():
    import onnx
    from onnx import TensorProto, helper
    from ppvision_hybrid.onnx import remove_dead_nodes
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    nodes = [helper.make_node("Constant", [], ["one"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
             helper.make_node("Constant", [], ["dead"], value=helper.make_tensor("w", TensorProto.FLOAT, [1], [2.0])),
             helper.make_node("Neg", ["dead"], ["dead2"]),  # dead through a chain
             helper.make_node("Add", ["x", "one"], ["y"])]
    graph = helper.make_graph(nodes, "g", [x], [y],
                              initializer=[helper.make_tensor("unused", TensorProto.FLOAT, [1], [3.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    cleaned = onnx.load_from_string(remove_dead_nodes(model.SerializeToString()))
    assert [n.output[0] for n in cleaned.graph.node] == ["one", "y"]
    assert not cleaned.graph.initializer
    onnx.checker.check_model(cleaned)
