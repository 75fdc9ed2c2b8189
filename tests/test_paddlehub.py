"""The optional PaddleHub wrapper loads through hub.Module(directory=...) (skipped without paddlehub)."""
import os

import numpy as np
import pytest

hub = pytest.importorskip("paddlehub", reason="paddlehub is optional (deploy/paddlehub/requirements.txt)")

MODULE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "deploy", "paddlehub", "ppvision_hybrid_classifier")


def test_paddlehub_module_predicts_topk():
    module = hub.Module(directory=MODULE_DIR, model_name="MixFormer_B0", class_num=7, input_size=64)
    image = (np.random.RandomState(0).rand(80, 100, 3) * 255).astype("uint8")
    result = module.predict([image, image], topk=3)
    assert len(result) == 2 and len(result[0]) == 3
    assert result[0] == result[1]
    assert all(0 <= c < 7 for c, _ in result[0])
    assert abs(sum(p for _, p in result[0])) <= 1.0 + 1e-6
