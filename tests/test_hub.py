"""paddle.hub entries, the weight registry (checksums, cache, offline paths), head dropping."""
import os

import numpy as np
import paddle
import pytest

import ppvision_hybrid as pvh
from ppvision_hybrid import weights
from ppvision_hybrid.weights import CheckpointError, WeightEntry

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = "MixFormer_B0"


def test_hub_list_is_exactly_the_registry():
    assert sorted(paddle.hub.list(REPO, source="local")) == pvh.list_models()


def test_hub_help_is_the_entry_docstring():
    text = paddle.hub.help(REPO, SMALL, source="local")
    assert SMALL in text and "pretrained" in text and "class_num" in text


def test_hub_load_builds_the_model():
    model = paddle.hub.load(REPO, "MixFormer_B4", source="local", pretrained=False, class_num=10)
    model.eval()
    with paddle.no_grad():
        assert model(paddle.randn([1, 3, 64, 64])).shape == [1, 10]


@pytest.fixture
def registered_weight(tmp_path, monkeypatch):
    """A weight entry served from a local file:// URL with its real checksum."""
    monkeypatch.setenv("PPVISION_HYBRID_HOME", str(tmp_path / "home"))
    paddle.seed(1)
    src_model = pvh.create_model(SMALL, class_num=10)
    src = tmp_path / "served" / f"{SMALL}_test.pdparams"
    src.parent.mkdir()
    paddle.save(src_model.state_dict(), str(src))
    entry = WeightEntry(url=src.as_uri(), sha256=weights.sha256sum(str(src)), source="trained here",
                        license="Apache-2.0", tag="test")
    monkeypatch.setitem(weights._WEIGHTS, SMALL, [entry])
    return src_model, entry


def _cache_files():
    d = weights.weights_cache_dir()
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_pretrained_true_downloads_verifies_and_caches(registered_weight):
    src_model, entry = registered_weight
    x = paddle.randn([1, 3, 64, 64])
    model = pvh.create_model(SMALL, pretrained=True, class_num=10)
    src_model.eval(), model.eval()
    with paddle.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), src_model(x).numpy())
    assert _cache_files() == [f"{SMALL}_test.pdparams"]
    # A second load reuses the verified cache (the served file may disappear: offline).
    os.remove(entry.url[len("file://"):])
    pvh.create_model(SMALL, pretrained=True, class_num=10)


def test_checksum_mismatch_is_refused_and_nothing_is_left(registered_weight, monkeypatch):
    _, entry = registered_weight
    bad = WeightEntry(url=entry.url, sha256="0" * 64, source=entry.source, tag="bad")
    monkeypatch.setitem(weights._WEIGHTS, SMALL, [bad])
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        pvh.create_model(SMALL, pretrained=True, class_num=10)
    assert _cache_files() == []


def test_corrupt_cached_file_is_fetched_again(registered_weight):
    _, entry = registered_weight
    cached = weights.download_weights(entry)
    with open(cached, "wb") as f:
        f.write(b"garbage")
    assert weights.download_weights(entry) == cached
    assert weights.sha256sum(cached) == entry.sha256


def test_pretrained_true_without_entry_lists_what_exists():
    with pytest.raises(CheckpointError, match="no pretrained weights are registered"):
        pvh.create_model("MixFormer_B1", pretrained=True)


def test_local_path_loads_offline_and_drops_a_mismatched_head(tmp_path, capsys):
    paddle.seed(2)
    src = pvh.create_model(SMALL, class_num=10)
    path = str(tmp_path / "w.pdparams")
    paddle.save(src.state_dict(), path)
    model = paddle.hub.load(REPO, SMALL, source="local", pretrained=path, class_num=3)
    assert "classifier weights" in capsys.readouterr().out
    body = [k for k in src.state_dict() if k not in src.classifier_state_keys()]
    for k in body[:20]:
        np.testing.assert_array_equal(model.state_dict()[k].numpy(), src.state_dict()[k].numpy())


def test_corrupt_checkpoint_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.pdparams"
    path.write_bytes(b"\x80\x04 not a pickle at all")
    with pytest.raises(CheckpointError, match="not a readable Paddle checkpoint"):
        pvh.create_model(SMALL, pretrained=str(path))


def test_pretrained_url_without_checksum_is_refused():
    with pytest.raises(CheckpointError, match="without a checksum"):
        pvh.create_model(SMALL, pretrained="https://example.invalid/w.pdparams")
