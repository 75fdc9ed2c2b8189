"""Every classification config parses with the strict loader and names a registered model
(configs/det and configs/seg belong to the dense-task toolkits and are skipped)."""
import glob
import os

import pytest

from ppvision_hybrid import list_models
from ppvision_hybrid.engine import get_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP = (os.path.join(ROOT, "configs", "det") + os.sep, os.path.join(ROOT, "configs", "seg") + os.sep)
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True)
                 if not p.startswith(SKIP))


def test_configs_found():
    assert any(p.endswith("MixFormer_B0.yaml") for p in CONFIGS)
    assert any(p.endswith("MixFormer_B0_digits.yaml") for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.relpath(p, ROOT) for p in CONFIGS])
def test_config_parses_and_names_a_registered_model(path):
    cfg = get_config(path)
    assert cfg["Arch"]["name"] in list_models(), f"{path}: Arch.name {cfg['Arch']['name']!r} is not registered"
    for mode in ("Train", "Eval"):
        assert mode in cfg["DataLoader"], f"{path}: DataLoader.{mode} missing"
    assert cfg["Global"]["image_shape"][0] == 3
    assert cfg["Infer"]["PostProcess"]["name"] == "Topk"
