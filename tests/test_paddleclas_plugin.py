import os
import subprocess
import sys
import types

import pytest

from conftest import ROOT

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


# ---- PaddleClas's generic Arch keys ------------------------------------------------------------

def test_generic_arch_keys_are_taken_by_every_factory():
    for name in pvh.registry.smallest_per_family():
        with pytest.warns(UserWarning, match="no-op"):
            model = pvh.create_model(name, class_num=3, data_format="NHWC", use_fused_attn=True,
                                     use_fused_linear=True)
        assert model.class_num == 3
    with pytest.warns(UserWarning, match="use_sync_bn=True needs a GPU"):
        pvh.create_model("MixFormer_B0", class_num=3, use_sync_bn=True)
    with pytest.raises(ValueError, match="Arch.data_format must be one of"):
        pvh.create_model("MixFormer_B0", data_format="NDHW")


# ---- python -m ppvision_hybrid.paddleclas -----------------------------------------------------

FAKE_TRAIN = '''
import os, sys, yaml
sys.path.append(os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
from ppcls import arch
args = sys.argv[1:]
cfg = yaml.safe_load(open(args[args.index("-c") + 1]))
model = getattr(arch, cfg["Arch"]["name"])(class_num=cfg["Arch"]["class_num"], window_size=4)
root = cfg["DataLoader"]["Train"]["dataset"]["image_root"]
print("OK", type(model).__name__, model.class_num, os.path.isfile(os.path.join(root, "train_list.txt")),
      "-o" in args)
'''


def _fake_paddleclas(root):
    (root / "ppcls" / "arch").mkdir(parents=True)
    (root / "ppcls" / "__init__.py").write_text("")
    (root / "ppcls" / "arch" / "__init__.py").write_text("")
    (root / "tools").mkdir()
    (root / "tools" / "train.py").write_text(FAKE_TRAIN)
    return root


def test_launcher_registers_models_and_prepares_the_demo_data(tmp_path):
    fake = _fake_paddleclas(tmp_path / "PaddleClas")
    demo = os.path.join(ROOT, "configs", "demo", "MixFormer_B0_digits.yaml")
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "ppvision_hybrid.paddleclas", str(fake / "tools" / "train.py"),
                           "-c", demo, "-o", "Global.epochs=1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "OK MixFormer 10 True True" in proc.stdout
    assert (tmp_path / "dataset" / "digits" / "label_list.txt").is_file()
    proc = subprocess.run([sys.executable, "-m", "ppvision_hybrid.paddleclas", str(tmp_path / "nope.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "no such PaddleClas script" in proc.stderr


@pytest.mark.skipif(not os.environ.get("PPVH_PADDLECLAS"),
                    reason="opt-in: PPVH_PADDLECLAS=<PaddleClas checkout> (and PPVH_PADDLECLAS_PYTHON "
                           "for a Python with PaddleClas's requirements)")
def test_paddleclas_engine_trains_the_demo(tmp_path):
    """PaddleClas's own tools/train.py on configs/demo/MixFormer_B0_digits.yaml, two iterations."""
    python = os.environ.get("PPVH_PADDLECLAS_PYTHON", sys.executable)
    script = os.path.join(os.environ["PPVH_PADDLECLAS"], "tools", "train.py")
    demo = os.path.join(ROOT, "configs", "demo", "MixFormer_B0_digits.yaml")
    proc = subprocess.run([python, "-m", "ppvision_hybrid.paddleclas", script, "-c", demo, "-o", "Global.epochs=1",
                           "-o", "Global.iter_per_epoch=2", "-o", "Global.eval_during_train=False"],
                          cwd=tmp_path, env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "[Train][Epoch 1/1][Iter: 0/2]" in proc.stdout + proc.stderr
    assert list(tmp_path.glob("output/**/latest.pdparams"))


def test_demo_data_follows_the_overrides_and_leaves_a_users_digits_folder_alone(tmp_path, monkeypatch):
    from ppvision_hybrid.data.dataset import ensure_demo_data
    from ppvision_hybrid.paddleclas import prepare_demo_data
    monkeypatch.chdir(tmp_path)
    demo = os.path.join(ROOT, "configs", "demo", "MixFormer_B0_digits.yaml")
    done = prepare_demo_data(["-c", demo, "-o", f"DataLoader.Train.dataset.image_root={tmp_path / 'a' / 'digits'}"])
    assert sorted(done) == sorted([str(tmp_path / "a" / "digits"), "./dataset/digits/"])
    assert (tmp_path / "a" / "digits" / "train_list.txt").is_file()
    assert (tmp_path / "dataset" / "digits" / "val_list.txt").is_file()  # the Eval root, from the file
    own = tmp_path / "mine" / "digits"
    own.mkdir(parents=True)
    (own / "notes.txt").write_text("my data")
    ensure_demo_data(str(own))
    assert sorted(p.name for p in own.iterdir()) == ["notes.txt"]
