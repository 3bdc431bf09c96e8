"""Predictor: any input size and kind, the map at the current image's size, safe under threads; and
checkpoint references (path, shipped name through $ANODFDNET_CHECKPOINT_DIR, bad files)."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from anodfdnet.checkpoint import list_checkpoints, read_info, resolve, save_checkpoint
from anodfdnet.errors import UserError
from anodfdnet.model import ModelConfig, build_model
from anodfdnet.predict import Predictor, model_input_shape


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "anodfdnet-test-d1.safetensors"
    save_checkpoint(path, build_model(ModelConfig.from_preset("lite", 1)), {"eval_size": 128, "val_metrics": {"x": {"f1": 0.5}}})
    return path


def test_any_size_and_input_kind_gives_a_map_at_the_current_size(ckpt, tmp_path):
    rng = np.random.default_rng(0)
    hist = rng.integers(0, 255, (90, 140, 3), dtype=np.uint8)
    cur = rng.integers(0, 255, (100, 150, 3), dtype=np.uint8)  # not a multiple of 16, and not the history's size
    Image.fromarray(hist).save(tmp_path / "h.png")
    Image.fromarray(cur).save(tmp_path / "c.png")
    p = Predictor(ckpt, device="cpu")
    from_arrays = p.predict(hist, cur)
    assert from_arrays.shape == (100, 150) and from_arrays.dtype == np.float32
    assert 0.0 <= from_arrays.min() and from_arrays.max() <= 1.0
    assert np.array_equal(from_arrays, p.predict(tmp_path / "h.png", str(tmp_path / "c.png")))
    assert np.array_equal(from_arrays, p.predict(Image.fromarray(hist), Image.fromarray(cur)))
    assert p.run(hist, cur).input_shape == model_input_shape(100, 150, 128) == (80, 128)


def test_concurrent_calls_match_sequential_ones(ckpt):
    rng = np.random.default_rng(1)
    pairs = [(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(8)]
    p = Predictor(ckpt, device="cpu", size=None)
    expected = [p.predict(h, c) for h, c in pairs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda hc: p.predict(*hc), pairs * 3))
    for i, g in enumerate(got):
        np.testing.assert_allclose(g, expected[i % 8], atol=1e-6)


def test_checkpoint_references(ckpt, tmp_path, monkeypatch):
    monkeypatch.setenv("ANODFDNET_CHECKPOINT_DIR", str(ckpt.parent))
    assert resolve("test-d1") == ckpt  # a shipped-style name, found in $ANODFDNET_CHECKPOINT_DIR
    info = read_info(ckpt)
    assert info.config.depth == 1 and info.eval_size == 128 and info.val_f1 == 0.5 and info.meta["version"]
    assert ckpt in [i.path for i in list_checkpoints()]
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="junk.safetensors"):
        read_info(tmp_path / "junk.safetensors")
    with pytest.raises(UserError, match="not found"):
        resolve("no-such-model")
    with pytest.raises(UserError, match="hf://OWNER/REPO/FILE"):
        resolve("hf://only-owner")
    if not torch.cuda.is_available():  # asking for a GPU that is not there is the user's error, not a crash
        with pytest.raises(UserError, match="no CUDA GPU"):
            Predictor(ckpt, device="cuda")
