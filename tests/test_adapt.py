"""Adaptation (``python -m anodfdnet adapt``): cross-fitted choice, folds, replay mixture, crops that keep thin
anomalies, the frozen encoder and norms, the guard against a model made worse on purpose, per-domain thresholds."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from anodfdnet.adaptation import AdaptConfig, adapt
from anodfdnet.adaptation.choice import choose, cross_fitted, fitted_threshold
from anodfdnet.adaptation.replay import Mixture, calibration_pool, replay_pool
from anodfdnet.adaptation.run import domain_name
from anodfdnet.adaptation.targets import make_folds, target_spec
from anodfdnet.checkpoint import load_checkpoint, read_info, save_checkpoint
from anodfdnet.data import PairDataset, parse_spec
from anodfdnet.errors import UserError
from anodfdnet.metrics import PixelMetrics
from anodfdnet.models import ModelConfig, build_model
from anodfdnet.train import TrainConfig, train

from conftest import shipped_checkpoint, write_tiny_pairs

ROOT = Path(__file__).resolve().parents[1]


def _metrics(prob: np.ndarray, mask: np.ndarray) -> PixelMetrics:
    m = PixelMetrics()
    m.update(prob.astype(np.float32), mask)
    return m


def test_cross_fitted_thresholds_come_from_the_other_folds_only():
    mask = np.zeros((10, 10), bool)
    mask[:2] = True  # 20 anomalous pixels in each pair
    # Fold 0: anomalies at 0.7, normal pixels at 0.2. Fold 1: anomalies at 0.35, normal pixels at 0.1.
    f0 = _metrics(np.where(mask, 0.7, 0.2), mask)
    f1 = _metrics(np.where(mask, 0.35, 0.1), mask)
    held = cross_fitted("threshold", [[f0], [f1]])
    # Fold 0 is scored at the threshold fitted on fold 1 alone (anything in (0.1, 0.35]: the tie nearest 0.5 is 0.35),
    # so fold 0 is perfect; fold 1 at the one fitted on fold 0 ((0.2, 0.7], nearest 0.5: 0.5) finds nothing.
    assert held.thresholds == pytest.approx([0.35, 0.5], abs=2e-4)  # bin edges of the 10,000-bin histograms
    assert held.fold_f1 == pytest.approx([1.0, 0.0])
    assert held.f1 == pytest.approx(2 * 20 / (2 * 20 + 20))  # pooled: TP 20, FN 20, FP 0
    fixed = cross_fitted("before", [[f0], [f1]], threshold=0.3)
    assert fixed.thresholds == [0.3, 0.3] and fixed.fold_f1 == pytest.approx([1.0, 1.0]) and fixed.f1 == pytest.approx(1.0)
    assert fitted_threshold([f0, f1]) == pytest.approx(0.35, abs=2e-4)


def test_choose_prefers_the_simplest_candidate_unless_beaten_by_the_margin():
    def h(name, f1):
        return cross_fitted(name, [[_metrics(np.full((4, 4), 0.9 if f1 else 0.1, np.float32), np.ones((4, 4), bool))]], threshold=0.5)

    results = {"before": h("before", 1), "threshold": h("threshold", 1), "adapted": h("adapted", 0)}
    assert choose(results) == "before"
    results = {"before": h("before", 0), "threshold": h("threshold", 0), "adapted": h("adapted", 1)}
    assert choose(results) == "adapted"
    results = {"before": h("before", 0), "threshold": h("threshold", 1), "adapted": h("adapted", 1)}
    assert choose(results) == "threshold"  # the adapted one does not beat the threshold-only one


def test_folds_are_leave_one_out_for_few_pairs_and_keep_a_pairs_labels_together(tmp_path):
    src = parse_spec(f"pairs:{write_tiny_pairs(tmp_path / 'p', n=7)}")
    folds = make_folds(src, 3)
    assert len(folds) == 3 and sorted(i for f in folds for i in f) == list(range(7))
    assert make_folds(src, 3) == folds  # deterministic
    few = parse_spec(f"pairs:{write_tiny_pairs(tmp_path / 'q', n=2)}")
    assert sorted(map(len, make_folds(few, 3))) == [1, 1]

    class SameKey:  # two annotators' labels of one pair share its key
        def __init__(self, keys):
            self.keys = keys

        def __len__(self):
            return len(self.keys)

        def key(self, i):
            return self.keys[i]

    folds = make_folds(SameKey(["a", "b", "a", "c", "b"]), 2)
    for fold in folds:
        keys = {["a", "b", "a", "c", "b"][i] for i in fold}
        assert all(["a", "b", "a", "c", "b"][j] not in keys for other in folds if other is not fold for j in other)
    with pytest.raises(UserError):
        make_folds(src, 1)


def test_mixture_holds_the_replay_share_and_replay_names_what_it_cannot_read(tmp_path):
    target = parse_spec(f"pairs:{write_tiny_pairs(tmp_path / 't', n=5)}")
    replay, notes = replay_pool(["synth:40", f"ab:{tmp_path / 'gone'}"], pairs=20, seed=1)
    assert len(replay) == 20 and any("left out" in n and "gone" in n for n in notes)  # all 20 from the one readable source
    mix = Mixture(target, replay, 0.3)
    assert abs(mix.replay_share - 0.3) < 0.05
    assert mix[0].name == target[0].name and mix[len(mix) - 1].name == replay[len(replay) - 1].name
    assert Mixture(target, replay, 0.0).replay_share == 0.0
    none, notes = replay_pool([f"ab:{tmp_path / 'gone'}"], pairs=20)
    assert none is None and "none of the checkpoint's training data" in notes[-1]
    with pytest.raises(UserError):
        Mixture(target, replay, 1.0)


def test_native_crops_keep_a_one_pixel_crack_and_quarter_turns_keep_the_pair_aligned(tmp_path):
    """A 1-px diagonal crack in a 512x512 pair: every crop at native resolution holds it as the same thin line
    (never blurred away by a resize), and the image difference sits exactly on the mask after every symmetry."""
    rng = np.random.default_rng(0)
    hist = rng.integers(90, 110, (512, 512, 3), dtype=np.uint8)
    cur = hist.copy()
    mask = np.zeros((512, 512), bool)
    idx = np.arange(100, 400)
    mask[idx, idx] = True
    cur[mask] = 255
    (tmp_path / "A").mkdir(), (tmp_path / "B").mkdir(), (tmp_path / "label").mkdir()
    Image.fromarray(hist).save(tmp_path / "A" / "x.png")
    Image.fromarray(cur).save(tmp_path / "B" / "x.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "label" / "x.png")
    ds = PairDataset(parse_spec(f"ab:{tmp_path}"), size=128, mode="crop", augment=True, seed=0, rot90=True)
    seen = 0
    for _ in range(40):
        item = ds[0]
        m = item["mask"][0].numpy() > 0.5
        diff = (item["current"] - item["history"]).abs().amax(0).numpy() > 0.5
        assert np.array_equal(m, diff)  # the crack is where the images differ, pixel for pixel
        if m.any():
            seen += 1
            assert m.sum() <= 128 and (m.sum(0) <= 1).all() and (m.sum(1) <= 1).all()  # still one pixel wide
    assert seen >= 15  # half of the crops are placed over the anomaly


def test_a_frozen_encoder_and_kept_norms_do_not_move(tiny_pairs, tmp_path):
    torch.manual_seed(0)
    init = save_checkpoint(tmp_path / "init.safetensors", build_model(ModelConfig.from_preset("lite", 1)), {})
    best = train(TrainConfig(data=[f"pairs:{tiny_pairs}"], val=[], out=str(tmp_path / "run"), init=str(init), preset="lite",
                             depth=1, size=32, mode="crop", epochs=1, steps_per_epoch=5, encoder_lr=0.0, frozen_norm=True,
                             workers=0, progress=False))
    before, _ = load_checkpoint(init)
    after, info = load_checkpoint(best)
    b, a = before.state_dict(), after.state_dict()
    assert all(torch.equal(b[k], a[k]) for k in b if k.startswith("encoder."))
    assert all(torch.equal(b[k], a[k]) for k in b if k.endswith(("running_mean", "running_var")))
    assert any(not torch.equal(b[k], a[k]) for k in b if k.startswith("decoder.") and k.endswith("weight"))
    assert info.meta["encoder_lr"] == 0.0 and info.meta["frozen_norm"] is True and info.meta["val_metrics"] == {}


def test_labels_argument_is_a_label_dataset_or_a_spec(tmp_path):
    assert target_spec(f"ab:{tmp_path}") == f"ab:{tmp_path}"
    assert target_spec(str(tmp_path / "labels")) == f"hf:{tmp_path / 'labels'}"
    assert target_spec(str(tmp_path / "labels"), "consensus", labels_per_pair=2) == f"hf:{tmp_path / 'labels'}?policy=consensus&k=2"
    with pytest.raises(UserError):
        target_spec(f"ab:{tmp_path}", "accepted")
    assert domain_name("ab:/data/line-7/") == "line-7" and domain_name("hf:owner/site cam?policy=latest") == "site-cam"


@pytest.mark.skipif(shipped_checkpoint("effnet-d2") is None, reason="the shipped effnet-d2 is absent")
def test_guard_keeps_the_old_model_when_adaptation_is_made_worse_on_purpose(tmp_path):
    """effnet-d2 on generated pairs it knows; adaptation at a learning rate that wrecks the decoder. The held-out
    pairs show it, so nothing is installed and the old checkpoint stays the default."""
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "anodfdnet", "adapt", "--labels", "synth:4:11", "--from", "effnet-d2",
                        "--out", str(out), "--steps", "4", "--lr", "30", "--replay-share", "0", "--size", "64", "--check-old", "0",
                        "--name", "wrecked", "--device", "cpu"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**__import__("os").environ, "ANODFDNET_CHECKPOINT_DIR": str(tmp_path / "ckpts")})
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    held = report["heldout"]
    assert held["adapted"]["f1"] < held["before"]["f1"] - 0.05, held
    assert report["choice"] in ("before", "threshold")
    installed = tmp_path / "ckpts" / "anodfdnet-wrecked.safetensors"
    if report["choice"] == "before":
        assert report["installed"] is None and report["best"] is None and not installed.exists()
    else:  # the old weights at the domain's threshold, never the wrecked ones
        old, new = load_checkpoint("effnet-d2")[0].state_dict(), load_checkpoint(installed)[0].state_dict()
        assert all(torch.equal(old[k], new[k]) for k in old)
    assert "held-out F1" in r.stdout and "before (effnet-d2" in r.stdout


def test_adapted_checkpoints_carry_their_domain_threshold_and_the_old_ones(tmp_path):
    torch.manual_seed(0)
    init = save_checkpoint(tmp_path / "init.safetensors", build_model(ModelConfig.from_preset("lite", 0)),
                           {"threshold": 0.3, "data": ["synth:20"], "eval_size": 64})
    labels = write_tiny_pairs(tmp_path / "site-b", n=4)
    report = adapt(AdaptConfig(labels=f"pairs:{labels}", out=str(tmp_path / "run"), init=str(init), steps=3, budget_minutes=None,
                               size=32, replay_pairs=4, progress=False, device="cpu"))
    assert report["folds"] == 3 and set(report["heldout"]) == {"before", "threshold", "adapted"}
    adapted = read_info(tmp_path / "run" / "adapted.safetensors")
    assert adapted.meta["domain"] == "site-b"
    # the old domains' threshold is fitted again for the adapted model, on old training pairs that replay did not use
    refit = report["threshold"]["generic_adapted"]
    assert adapted.meta["domain_thresholds"] == {"generic": refit, "site-b": adapted.threshold}
    cal = calibration_pool(["synth:20"], 20, 4, 0)
    replayed, _ = replay_pool(["synth:20"], 4, 0)
    assert len(cal) == len(parse_spec("synth:20@train")) - 4
    assert not {cal.key(i) for i in range(len(cal))} & {replayed.key(i) for i in range(len(replayed))}
    assert adapted.meta["adaptation"]["pairs"] == 4 and adapted.meta["val_metrics"]["site-b"]["kind"] == "held-out labelled pairs"
    assert any("synth:20@train" in n for n in report["replay"])
    old = report["old_domains"]["synth:20"]  # forgetting, on the old domain's validation side
    assert old["pairs"] == len(parse_spec("synth:20@val")) and 0.0 <= old["before"] <= 1.0 and 0.0 <= old["adapted"] <= 1.0
    assert old["refit_threshold"] == refit and old["threshold"] == 0.3
    # the routed checkpoint: both heads behind the one frozen encoder, one threshold for both
    routed = read_info(tmp_path / "run" / "routed.safetensors")
    assert report["routed"] == str(routed.path) and routed.routing["target_references"] == 4
    assert routed.routing["old_references"] == len(cal) and routed.threshold == adapted.threshold
    assert routed.meta["domain_thresholds"] == {"generic": adapted.threshold, "site-b": adapted.threshold}
    assert "routed" in old and 0.0 <= old["routed_to_old"] <= 1.0
    if report["choice"] == "adapted":
        assert report["best"] and read_info(report["best"]).routing
    model, _ = load_checkpoint(routed.path)
    base_model, _ = load_checkpoint(init)
    pair = parse_spec("synth:20@val")[0]
    from anodfdnet.inference.pipeline import prepare_pair

    h, c, _, _ = prepare_pair(pair.history, pair.current, 64, "off")
    with torch.inference_mode():
        got = model(h[None], c[None])
        as_old = base_model(h[None], c[None]) + model.base_shift
        as_adapted = model.adapted(h[None], c[None])
    assert torch.allclose(got, as_old, atol=1e-5) or torch.allclose(got, as_adapted, atol=1e-5)
    only_threshold = read_info(tmp_path / "run" / "threshold.safetensors")
    a, b = load_checkpoint(init)[0].state_dict(), load_checkpoint(only_threshold.path)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the threshold-only candidate keeps the weights
    # The same command again resumes: every run is complete, so nothing trains again and the figures repeat.
    again = adapt(AdaptConfig(labels=f"pairs:{labels}", out=str(tmp_path / "run"), init=str(init), steps=3, budget_minutes=None,
                              size=32, replay_pairs=4, progress=False, device="cpu"))
    assert again["heldout"] == report["heldout"]


def test_one_pair_is_adapted_but_never_made_the_default(tmp_path):
    torch.manual_seed(0)
    init = save_checkpoint(tmp_path / "init.safetensors", build_model(ModelConfig.from_preset("lite", 0)), {"eval_size": 64})
    labels = write_tiny_pairs(tmp_path / "one", n=1)
    report = adapt(AdaptConfig(labels=f"pairs:{labels}", out=str(tmp_path / "run"), init=str(init), steps=2, budget_minutes=None,
                               size=32, replay_share=0, progress=False, device="cpu", name="one"))
    assert report["choice"] == "before" and report["folds"] == 0 and report["installed"] is None
    assert (tmp_path / "run" / "adapted.safetensors").is_file() and not (tmp_path / "run" / "best.safetensors").exists()


def test_bad_adapt_input_is_one_sentence_and_exit_2(tmp_path):
    cases = [["--labels", f"ab:{tmp_path / 'nothing'}", "--out", str(tmp_path / "o")],
             ["--labels", f"pairs:{tmp_path}", "--out", str(tmp_path / "o"), "--folds", "1"],
             ["--labels", f"pairs:{tmp_path}", "--out", str(tmp_path / "o"), "--replay-share", "1"],
             ["--labels", f"pairs:{tmp_path}", "--out", str(tmp_path / "o"), "--from", "no-such-model"]]
    for args in cases:
        r = subprocess.run([sys.executable, "-m", "anodfdnet", "adapt", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr, (args, r.stderr)
