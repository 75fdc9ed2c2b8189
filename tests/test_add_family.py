"""Adding a family is adding one file: a toy family written to ``models/`` of a copy of the
package is picked up by the registry harness (tests/test_models.py: counts, forward/backward,
odd sizes, pyramid, reset_classifier, export round trip, state dict), the MAC counter, the
paddle.hub listing and both dense-task adapters, with no other edit.

The copy (package, hubconf.py, the harness test files) lives in a temporary directory and the
harness runs there in a child process, so the toy never enters this process's registry.
"""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: the whole toy family: layers, one HybridBackbone subclass, one variant table
TOY_FAMILY = '''
"""ToyNet: the smallest family the template allows (a fixture of tests/test_add_family.py)."""
import paddle.nn as nn

from ..layers import DropPath
from .base import HybridBackbone, StageNorms, Variant, drop_path_rates, reference_counts, register_variants

PAPER = "a toy family (no paper)"


def conv_bn(in_ch, out_ch, stride):
    return nn.Sequential(nn.Conv2D(in_ch, out_ch, 3, stride=stride, padding=1, bias_attr=False),
                         nn.BatchNorm2D(out_ch))


class Block(nn.Layer):
    def __init__(self, dim, drop_path):
        super().__init__()
        self.mix = conv_bn(dim, dim, 1)
        self.act = nn.GELU()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        return x + self.drop_path(self.act(self.mix(x)))


class ToyNet(HybridBackbone):
    def __init__(self, dims=(8, 16, 24, 32), depths=(1, 1, 2, 1), drop_path_rate=0.0, in_chans=3,
                 class_num=1000, out_indices=(0, 1, 2, 3), features_only=False):
        super().__init__(in_chans, class_num, out_indices, features_only)
        self.feature_info = [dict(channels=d, stride=4 * 2 ** i) for i, d in enumerate(dims)]
        self.num_features = dims[-1]
        self.stem = nn.Sequential(conv_bn(in_chans, dims[0], 2), nn.GELU(), conv_bn(dims[0], dims[0], 2))
        rates = drop_path_rates(drop_path_rate, depths)
        self.downsamples = nn.LayerList([conv_bn(dims[i - 1], dims[i], 2) for i in range(1, 4)])
        self.stages = nn.LayerList([nn.Sequential(*[Block(dims[i], r) for r in rates[i]]) for i in range(4)])
        if features_only:
            self.out_norms = StageNorms(nn.BatchNorm2D, dims, self.out_indices)
        else:
            self.head = self.classifier(class_num)
            self.init_head(self.head)

    def _stage_outputs(self, x, last):
        x = self.stem(x)
        outs = []
        for i in range(last + 1):
            x = self.stages[i](x if i == 0 else self.downsamples[i - 1](x))
            outs.append(x)
        return outs

    def forward_features(self, x):
        self.require_classifier("forward_features")
        return self._stage_outputs(x, 3)[-1].mean(axis=[2, 3])

    def forward_pyramid(self, x):
        outs = self._stage_outputs(x, max(self.out_indices))
        if self.features_only:
            return [self.out_norms.normalize(i, outs[i]) for i in self.out_indices]
        return [outs[i] for i in self.out_indices]


VARIANTS = {
    "ToyNet_S": Variant(dict(dims=(8, 16, 24, 32), depths=(1, 1, 2, 1), drop_path_rate=0.1),
                        reference_counts(PARAMS, MACS, source="measured"), "the toy"),
}
register_variants(ToyNet, "toynet", PAPER, VARIANTS, globals())
'''
#: trainable parameters and MACs of ToyNet_S at 3x224x224, 1000 classes (ppvision_hybrid.flops)
TOY_PARAMS, TOY_MACS = 68_160, 12_563_456


@pytest.fixture(scope="module")
def checkout_with_toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("with_toy")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(os.path.join(ROOT, "ppvision_hybrid"), root / "ppvision_hybrid", ignore=ignore)
    os.makedirs(root / "tests")
    for name in ("conftest.py", "test_models.py", "test_hub.py", "test_dense.py"):
        shutil.copy(os.path.join(ROOT, "tests", name), root / "tests" / name)
    shutil.copy(os.path.join(ROOT, "hubconf.py"), root / "hubconf.py")
    source = TOY_FAMILY.replace("PARAMS", repr(TOY_PARAMS)).replace("MACS", repr(TOY_MACS))
    (root / "ppvision_hybrid" / "models" / "toynet.py").write_text(source.lstrip())
    return root


def _run(root, args, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(root))
    return subprocess.run([sys.executable] + args, cwd=str(root), env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_registry_harness_counter_hub_and_dense_adapters_take_the_new_family(checkout_with_toy):
    out = _run(checkout_with_toy, [
        "-m", "pytest", "-v", "-p", "no:cacheprovider", "tests/test_models.py", "tests/test_hub.py",
        "tests/test_dense.py", "-k", "ToyNet or toynet or test_hub_list_is_exactly_the_registry "
        "or test_registry_lists_every_family"])
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    for test in ("test_counts_match_reference[ToyNet_S]",
                 "test_forward_backward_every_parameter_gets_a_gradient[ToyNet_S]",
                 "test_pyramid_features_strides_and_channels[ToyNet_S]",
                 "test_surface_no_weight_decay_and_reset_classifier[ToyNet_S]",
                 "test_export_round_trip_dynamic_hw[ToyNet_S]", "test_state_dict_round_trip_and_mismatch[ToyNet_S]",
                 "test_registry_lists_every_family", "test_hub_list_is_exactly_the_registry",
                 "test_backbone_features_every_family[toynet]"):
        assert f"::{test} PASSED" in text, (test, text[-3000:])


def test_the_toy_is_listed_everywhere_and_counted(checkout_with_toy):
    script = textwrap.dedent("""
        import paddle, ppvision_hybrid as pvh
        from ppvision_hybrid.registry import smallest_per_family
        from ppvision_hybrid.flops import count_macs, count_params
        assert "toynet" in pvh.list_families() and "ToyNet_S" in smallest_per_family()
        assert "ToyNet_S" in paddle.hub.list(".", source="local")
        from ppvision_hybrid.models.toynet import ToyNet_S   # the factory is a module attribute
        model = pvh.create_model("ToyNet_S")
        print(count_params(model), count_macs(model, (3, 224, 224)))
    """)
    out = _run(checkout_with_toy, ["-c", script])
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    params, macs = (int(v) for v in out.stdout.split()[-2:])
    assert (params, macs) == (TOY_PARAMS, TOY_MACS)
