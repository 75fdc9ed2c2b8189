"""test_tipc/: one PaddleClas-format ``*_train_infer_python.txt`` per family (its smallest
variant), read the way PaddleClas's test_tipc/test_train_inference_python.sh reads it (line
positions, ``key:value`` splitting), whose train/eval/export commands name a config that
validates with their overrides and whose predict command names a predictor config that
validates. The full chain runs in benchmarks/paddleclas_tipc.py (minutes per family)."""
import glob
import os
import shlex
import sys

import pytest

from conftest import ROOT
from ppvision_hybrid.engine import get_config
from ppvision_hybrid.registry import smallest_per_family

TIPC = os.path.join(ROOT, "test_tipc", "configs")


def _value(line):
    """PaddleClas's func_parser_value: the text after the first ':' (up to a second one)."""
    return line.split(":")[1] if ":" in line else ""


def _key(line):
    return line.split(":")[0]


def _tipc_file(name):
    return os.path.join(TIPC, name.rsplit("_", 1)[0], f"{name}_train_infer_python.txt")


def _config_and_overrides(command):
    args = shlex.split(command)
    config = args[args.index("-c") + 1]
    overrides = [args[i + 1] for i, a in enumerate(args) if a == "-o"]
    return os.path.join(ROOT, config), overrides


def test_one_file_per_family_and_nothing_else():
    expected = sorted(_tipc_file(n) for n in smallest_per_family())
    assert sorted(glob.glob(os.path.join(TIPC, "*", "*_train_infer_python.txt"))) == expected


@pytest.mark.parametrize("name", smallest_per_family())
def test_tipc_file_reads_as_paddleclas_reads_it(name):
    lines = open(_tipc_file(name)).read().split("\n")
    assert _value(lines[1]) == name  # model_name: train.log is read from <save_log>/<model_name>/
    assert _key(lines[14]) == "trainer" and _value(lines[14]) == "norm_train"
    assert _key(lines[10]) == "train_model_name" and _value(lines[10]) == "latest"
    assert all(":" not in _value(line)[1:] for line in lines[:51])  # no second ':' in a value
    epochs = dict(item.split("=") for item in _value(lines[6]).split("|"))
    assert epochs["lite_train_lite_infer"] == "2"
    train_cfg, overrides = _config_and_overrides(_value(lines[15]))
    cfg = get_config(train_cfg, overrides + ["Global.device=cpu", "Global.epochs=2", "AMP.use_amp=False",
                                             "Global.print_mem_info=True", "Global.log_ranks=0,1,2,3,4,5,6,7",
                                             "DataLoader.Train.sampler.batch_size=8", "Global.to_static=True"])
    shipped = get_config(train_cfg)  # the TIPC overrides keep the demo's own input size (32 or 48)
    assert cfg["Arch"]["name"] == name and cfg["Global"]["image_shape"] == shipped["Global"]["image_shape"]
    assert shipped["Global"]["image_shape"][1] in (32, 48)
    for index in (23, 29):  # eval and export use the same config
        assert _config_and_overrides(_value(lines[index]))[0] == train_cfg
    assert _key(lines[27]) == "-o Global.save_inference_dir" and _key(lines[28]) == "-o Global.pretrained_model"
    predict = _value(lines[39]).split()
    assert predict[0] == "python/predict_cls.py"
    assert _value(lines[41]) == "True|False"  # oneDNN on and off
    from ppvision_hybrid import predict as predict_cls
    pconfig = predict_cls.load_config(os.path.join(ROOT, "deploy", predict[predict.index("-c") + 1]), [
        f"{_key(lines[i])[3:]}={_value(lines[i]).split('|')[0]}" for i in range(40, 50)])
    predict_cls.validate_config(pconfig)
    assert pconfig["Global"]["use_gpu"] is False
