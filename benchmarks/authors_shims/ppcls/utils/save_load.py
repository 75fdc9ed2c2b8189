"""Pretrained-weight loaders the official MixFormer imports (local files only; no download)."""
import paddle


def load_dygraph_pretrain(model, path=None):
    path = path if path.endswith(".pdparams") else path + ".pdparams"
    model.set_state_dict(paddle.load(path))


def load_dygraph_pretrain_from_url(model, pretrained_url, use_ssld=False):
    raise RuntimeError(f"no download in the benchmark stand-ins: fetch {pretrained_url} and pass its path")
