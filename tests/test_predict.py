"""Predictor: any input size and kind, the map at the current image's size, safe under threads; and
checkpoint references (path, shipped name through $ANODFDNET_CHECKPOINT_DIR, bad files)."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from anodfdnet.checkpoint import list_checkpoints, read_info, resolve, save_checkpoint
from anodfdnet.errors import UserError
from anodfdnet.models import ModelConfig, build_model
from anodfdnet.inference.pipeline import model_input_shape
from anodfdnet.predict import Predictor


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


def test_folder_prediction_batches_equal_shapes_and_keeps_order(ckpt, tmp_path):
    """iter_predictions: batched (and threaded) results equal one-at-a-time ones, in the source's order,
    also when input shapes change mid-way (a batch never mixes shapes)."""
    from anodfdnet.data import parse_spec
    from anodfdnet.predict import iter_predictions
    from tests.conftest import write_tiny_pairs

    write_tiny_pairs(tmp_path / "p", n=5, size=64, seed=1)
    write_tiny_pairs(tmp_path / "q", n=4, size=96, seed=2)
    for d in (tmp_path / "q").iterdir():
        d.rename(tmp_path / "p" / f"z{d.name}")  # sorted after the 64x64 ones
    source = parse_spec(f"pairs:{tmp_path / 'p'}")
    p = Predictor(ckpt, device="cpu", size=None, path="eager")
    one = [(pair.name, p.predict(pair.history, pair.current)) for pair in (source[i] for i in range(len(source)))]
    for batch, workers, lanes in ((3, 2, 1), (8, 0, 1), (1, 2, 3), (2, 1, 2)):  # lanes: model calls in flight, still in order
        got = list(iter_predictions(p, source, batch=batch, workers=workers, lanes=lanes))
        assert [pair.name for pair, _ in got] == [name for name, _ in one]
        for (_, prob), (_, ref) in zip(got, one):
            np.testing.assert_allclose(prob, ref, atol=1e-5)
    assert [prob.shape for _, prob in got] == [(64, 64)] * 5 + [(96, 96)] * 4
    with pytest.raises(UserError, match="batch"):
        list(iter_predictions(p, source, batch=0))
    with pytest.raises(UserError, match="lanes"):
        list(iter_predictions(p, source, lanes=0))
