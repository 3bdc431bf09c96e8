"""What makes training efficient per CPU-hour (issue #11): recipes and their schedule, the anomaly prior,
the CPU budget, bf16 training, the calibrated threshold, the decoded-pair cache and the nuisance
augmentation, all exercised for real on small generated pairs."""
import json
import math

import numpy as np
import pytest
import torch

from anodfdnet.data.augment import misregister, photometric
from anodfdnet.checkpoint import read_info
from anodfdnet.data import PairDataset, parse_spec
from anodfdnet.metrics import PixelMetrics, best_threshold
from anodfdnet.models import ModelConfig, build_model
from anodfdnet.data.pair_cache import CachedSource, cached
from anodfdnet.predict import Predictor
from anodfdnet.recipes import RECIPES, lr_factor, make_optimizer
from anodfdnet.train import TrainConfig, anomaly_prior, logit_head, set_prior, train


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ANODFDNET_CACHE", str(tmp_path / "cache"))


def _cfg(tiny, out, **kw):
    spec = f"pairs:{tiny}"
    base = dict(data=[spec], val=[spec], out=str(out), size=64, epochs=1, batch=4, workers=0, progress=False, depth=1)
    return TrainConfig(**{**base, **kw})


def test_fast_schedule_warms_up_then_decays_and_paper_is_constant():
    fast, paper = RECIPES["fast"], RECIPES["paper"]
    assert lr_factor(fast, 0.0) < 0.01 and lr_factor(fast, fast.warmup / 2) == pytest.approx(0.5)
    assert lr_factor(fast, fast.warmup) == pytest.approx(1.0)
    values = [lr_factor(fast, p) for p in np.linspace(fast.warmup, 1.0, 50)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # monotone decay after the warm-up
    assert lr_factor(fast, 1.0) == pytest.approx(fast.final_lr)
    assert {lr_factor(paper, p) for p in (0.0, 0.3, 1.0)} == {1.0}
    assert (paper.lr, paper.betas, paper.loss) == (2e-4, (0.5, 0.999), "bce")  # the paper's recipe, unchanged


def test_optimizer_groups_decay_only_weights_and_slow_a_pretrained_encoder():
    model = build_model(ModelConfig.from_preset("effnet", 1))
    opt = make_optimizer(model, RECIPES["fast"], encoder_lr=RECIPES["fast"].encoder_lr)
    assert isinstance(opt, torch.optim.AdamW)
    names = {id(p): n for n, p in model.named_parameters()}
    for g in opt.param_groups:
        for p in g["params"]:
            n = names[id(p)]
            assert (g["weight_decay"] > 0) == (p.ndim > 1 and not n.endswith(".pos")), n
            want = RECIPES["fast"].lr * (RECIPES["fast"].encoder_lr if n.startswith("encoder.") else 1.0)
            assert g["base_lr"] == pytest.approx(want), n
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    assert isinstance(make_optimizer(model, RECIPES["paper"]), torch.optim.Adam)


def test_prior_bias_makes_an_untrained_model_predict_the_anomaly_share(tiny_pairs):
    source = parse_spec(f"pairs:{tiny_pairs}")
    share = anomaly_prior(source)
    want = np.mean([p.mask.mean() for p in source])
    assert share == pytest.approx(want)
    torch.manual_seed(0)
    model = build_model(ModelConfig.from_preset("lite", 1)).eval()
    assert logit_head(model) is model.decoder.head
    assert set_prior(model, share) == pytest.approx(math.log(share / (1 - share)))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        mean_prob = torch.sigmoid(model(x, x)).mean().item()  # identical images: only the bias speaks
    assert abs(mean_prob - share) < 0.5 * share
    for arch in ("unet-cat", "fc-siam-diff", "deeplabv3plus-cat"):
        baseline = build_model(ModelConfig.from_preset("lite", 0, arch=arch))
        assert set_prior(baseline, 0.01) is not None and logit_head(baseline).out_channels == 1


def test_cpu_budget_stops_a_run_and_is_recorded(tiny_pairs, tmp_path):
    best = train(_cfg(tiny_pairs, tmp_path / "run", epochs=50, steps_per_epoch=50, budget_minutes=0.03))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] < 50 * 50  # stopped by the budget, not by the epochs
    assert log[-1]["cpu_minutes"] >= 0.03
    meta = read_info(tmp_path / "run" / "last.safetensors").meta
    assert meta["train_cpu_minutes"] >= 0.03 and meta["recipe"] == "fast"
    assert best.exists()


def test_calibrated_threshold_is_stored_and_used_by_predict(tiny_pairs, tmp_path):
    torch.manual_seed(0)
    best = train(_cfg(tiny_pairs, tmp_path / "run", epochs=2, steps_per_epoch=40))
    info = read_info(best)
    t = info.meta["threshold"]
    assert 0.02 <= t <= 0.98 and info.threshold == t and Predictor(best, device="cpu").threshold == t
    val = info.meta["val_metrics"][f"pairs:{tiny_pairs}"]
    assert val["f1_at_threshold"] >= val["f1"] - 1e-12  # the calibrated threshold is at least as good on its own pairs


def test_bf16_training_runs_and_learns(tiny_pairs, tmp_path):
    torch.manual_seed(0)
    best = train(_cfg(tiny_pairs, tmp_path / "run", epochs=2, steps_per_epoch=40, precision="bf16", preset="lite"))
    info = read_info(best)
    assert info.meta["precision"] == "bf16"
    assert info.meta["val_metrics"][f"pairs:{tiny_pairs}"]["auc"] > 0.8


def test_metrics_at_other_thresholds_equal_a_direct_count():
    rng = np.random.default_rng(3)
    probs = [rng.random((40, 50)).astype(np.float32) ** 2 for _ in range(3)]
    masks = [p + rng.normal(0, 0.2, p.shape) > 0.6 for p in probs]
    hist = PixelMetrics()
    for p, m in zip(probs, masks):
        hist.update(p, m)
    for t in (0.1, 0.25, 0.5, 0.7321):
        direct = PixelMetrics(threshold=t)
        for p, m in zip(probs, masks):
            direct.update(p, m)
        d, a = direct.compute(), hist.at(t)
        for k in ("precision", "recall", "oa", "f1", "iou"):
            assert a[k] == pytest.approx(d[k], abs=1e-12), (t, k)
    t, f1 = best_threshold([hist])
    thresholds, curve = hist.f1_curve()
    assert f1 == pytest.approx(curve[(thresholds >= 0.02) & (thresholds <= 0.98)].max())
    assert hist.at(t)["f1"] == pytest.approx(f1)


def test_pair_cache_returns_exactly_the_decoded_pair_and_survives_a_torn_entry(tiny_pairs, tmp_path):
    src = parse_spec(f"pairs:{tiny_pairs}@train")
    c = cached(src, tmp_path / "c")
    assert c.spec == src.spec and len(c) == len(src)
    for i in range(len(src)):
        a, b = src[i], c[i]
        assert np.array_equal(a.history, b.history) and np.array_equal(a.current, b.current) and np.array_equal(a.mask, b.mask)
    leaf = c.source
    assert isinstance(leaf, CachedSource)
    entry = leaf.path(c.indices[0])
    assert entry.exists()
    entry.write_bytes(entry.read_bytes()[:100])  # a torn write (full disk): decoded again and rewritten
    again = c[0]
    assert np.array_equal(again.current, src[0].current) and entry.stat().st_size > 100


def test_nuisance_augmentation_keeps_the_anomaly_under_its_mask(tiny_pairs):
    src = parse_spec(f"pairs:{tiny_pairs}")
    ds = PairDataset(src, size=32, mode="crop", augment=True, nuisance=True, seed=0)
    torch.manual_seed(0)
    checked = 0
    for i in range(len(src)):
        for _ in range(3):
            b = ds[i]
            m = b["mask"][0].bool()
            if m.sum() < 8 or (~m).sum() < 8:
                continue
            diff = (b["current"] - b["history"]).abs().mean(0)
            assert diff[m].mean() > diff[~m].mean() + 0.2  # the painted square is still where the mask says
            checked += 1
    assert checked >= 5
    img = np.full((40, 40, 3), 100, np.uint8)
    img[10:20, 10:20] = 200
    rng = np.random.default_rng(0)
    assert misregister(img, rng).shape == img.shape and photometric(img, rng).dtype == np.uint8
