import sys
import types

import pytest

import ppvision_hybrid as pvh
from ppvision_hybrid.paddleclas_plugin import register_into_paddleclas


def test_factories_land_in_a_ppcls_arch_namespace(monkeypatch):
    fake = types.ModuleType("ppcls.arch")
    monkeypatch.setitem(sys.modules, "ppcls", types.ModuleType("ppcls"))
    monkeypatch.setitem(sys.modules, "ppcls.arch", fake)
    added = register_into_paddleclas()
    assert added == pvh.list_models()
    model = getattr(fake, "MixFormer_B0")(pretrained=False, class_num=3)
    assert model.class_num == 3


def test_name_clash_is_refused():
    fake = types.ModuleType("arch")
    fake.MixFormer_B0 = object()
    with pytest.raises(ValueError, match="already exists"):
        register_into_paddleclas(fake)
