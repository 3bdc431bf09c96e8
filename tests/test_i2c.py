"""FOD's I2Correlation bottleneck (models/i2c.py) and the unsupervised objective (objective.py, data/normal.py)."""
import numpy as np
import pytest
import torch
from PIL import Image

from anodfdnet.checkpoint import SHIPPED_DIR, load_checkpoint, read_info, save_checkpoint
from anodfdnet.data import parse_spec
from anodfdnet.data.synth import generate_pair
from anodfdnet.errors import UserError
from anodfdnet.models import DEPTHS, PRESETS, ModelConfig, build_model
from anodfdnet.models.i2c import (I2COutput, correlation_loss, entropy_rows, grid_distances, rbf_target)
from anodfdnet.train import TrainConfig, train


def _pair(seed=0, size=32):
    g = torch.Generator().manual_seed(seed)
    h = torch.rand(1, 3, size, size, generator=g) * 2 - 1
    c = h.clone()
    c[:, :, 8:16, 8:24] = 0.9
    return h, c


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_and_depth_builds_and_keeps_the_output_shape(preset):
    h, c = _pair()
    for depth in DEPTHS:
        model = build_model(ModelConfig.from_preset(preset, depth, bottleneck="i2c")).eval()
        assert model.transformer is None and len(model.i2c.layers) == max(depth, 1)
        with torch.no_grad():
            assert model(h, c).shape == (1, 1, 32, 32)
            taps = model.encoder(torch.cat([h, c]))
            out = model.i2c(taps[-1][:1], taps[-1][1:], (taps[-1][1:] - taps[-1][:1]).abs())
        n = (32 // 16) ** 2
        cfg = model.config
        assert out.features.shape == (1, cfg.hidden, 2, 2) and out.maps.shape == (1, 2, 2, 2)
        assert out.score.shape == out.patch.shape == (1, n)
        assert len(out.intra) == len(out.inter) == max(depth, 1)
        assert out.inter[0][0].shape == out.inter[0][1].shape == (1, cfg.heads, n, n)
    normal = build_model(ModelConfig.from_preset(preset, 1, bottleneck="i2c", objective="normal")).eval()
    with torch.no_grad():
        assert normal(h, c).shape == (1, 1, 32, 32)


def test_the_normal_objective_and_a_baseline_need_the_i2c_bottleneck():
    with pytest.raises(ValueError, match="i2c"):
        ModelConfig.from_preset("lite", 2, objective="normal")
    with pytest.raises(ValueError, match="i2c"):
        ModelConfig.from_preset("lite", 2, arch="unet-cat", bottleneck="i2c")


def test_rbf_target_rows_sum_to_one_and_peak_at_the_query_position():
    h, w, heads = 5, 7, 3
    raw = torch.randn(2, h * w, 2 * heads) * 3
    t = rbf_target(raw, h, w)
    assert t.shape == (2, heads, h * w, h * w)
    assert torch.allclose(t.sum(-1), torch.ones(2, heads, h * w), atol=1e-5)
    own = torch.arange(h * w)
    assert torch.equal(t.argmax(-1), own.expand(2, heads, -1))
    # wider sigma: more mass away from the query; the target is a Gaussian of the distance
    dy2, dx2 = grid_distances(h, w)
    narrow, wide = rbf_target(torch.full((1, h * w, 2), -2.0), h, w), rbf_target(torch.full((1, h * w, 2), 2.0), h, w)
    far = (dy2 + dx2) > 0
    assert (wide[0, 0][far].sum() > narrow[0, 0][far].sum())
    row = wide[0, 0, 17]
    d = (dy2 + dx2)[17]
    assert torch.all(row[d == 1] > row[d == 4])


def test_entropy_constraint_spreads_intra_and_sharpens_inter_attention():
    """With the targets equal to the attention (the correlation terms' gradients vanish there), one gradient
    step on the loss raises the intra attention's entropy and lowers the inter attention's."""
    torch.manual_seed(0)
    z_intra = torch.randn(1, 2, 6, 6, requires_grad=True)
    z_inter = torch.randn(1, 2, 6, 6, requires_grad=True)
    a_intra, a_inter = z_intra.softmax(-1), z_inter.softmax(-1)
    out = I2COutput(torch.zeros(1, 4, 2, 3), torch.zeros(1, 2, 2, 3), torch.zeros(1, 6), torch.zeros(1, 6),
                    intra=[(a_intra, a_intra.detach().clone())], inter=[(a_inter, a_inter.detach().clone())])
    correlation_loss(out).backward()
    with torch.no_grad():
        e_intra0, e_inter0 = entropy_rows(a_intra).mean(), entropy_rows(a_inter).mean()
        e_intra1 = entropy_rows((z_intra - 0.5 * z_intra.grad).softmax(-1)).mean()
        e_inter1 = entropy_rows((z_inter - 0.5 * z_inter.grad).softmax(-1)).mean()
    assert e_intra1 > e_intra0
    assert e_inter1 < e_inter0


def test_history_is_the_reference_roles_are_not_symmetric():
    torch.manual_seed(0)
    model = build_model(ModelConfig.from_preset("lite", 2, bottleneck="i2c")).eval()
    h, c = _pair(size=64)
    with torch.no_grad():
        taps = model.encoder(torch.cat([h, c]))
        fh, fc = taps[-1][:1], taps[-1][1:]
        d5 = (fc - fh).abs()
        out, swapped = model.i2c(fh, fc, d5), model.i2c(fc, fh, d5)
        # the inter branch of the first layer, by itself: queries from the current, keys/values from the history
        layer = model.i2c.layers[0]
        x, r = model.i2c.tokens(fc), model.i2c.tokens(fh)
        inter = layer.inter(layer.ln1(x), layer.ln_ref(r), 4, 4)[0]
        inter_swapped = layer.inter(layer.ln1(r), layer.ln_ref(x), 4, 4)[0]
        assert not torch.allclose(inter, inter_swapped, atol=1e-4)
        assert not torch.allclose(out.features, swapped.features, atol=1e-4)
        assert not torch.allclose(model(h, c), model(c, h), atol=1e-4)
        # the paper's Transformer model is symmetric in its inputs
        tr = build_model(ModelConfig.from_preset("lite", 2)).eval()
        assert torch.allclose(tr(h, c), tr(c, h), atol=1e-5)


def test_checkpoint_round_trip_keeps_bottleneck_objective_and_outputs(tmp_path):
    torch.manual_seed(1)
    for objective in ("supervised", "normal"):
        model = build_model(ModelConfig.from_preset("lite", 1, bottleneck="i2c", objective=objective)).eval()
        if objective == "normal":
            model.i2c.score_center.fill_(0.3)
            model.i2c.score_scale.fill_(0.2)
        path = save_checkpoint(tmp_path / f"{objective}.safetensors", model, {"objective": objective})
        loaded, info = load_checkpoint(path)
        assert (info.bottleneck, info.objective) == ("i2c", objective)
        assert info.model_summary == "I2Correlation depth 1" + (", unsupervised" if objective == "normal" else "")
        h, c = _pair(size=48)
        with torch.no_grad():
            assert torch.equal(model(h, c), loaded(h, c))


# effnet-d0 and effnet-d2 logits on this input, computed by the code before the i2c bottleneck existed (main at
# a297933): the shipped Transformer checkpoints still load with no bottleneck field and give the same numbers.
SHIPPED_REFERENCE = {
    0: (-46927.896946668625, [-7.02006, -8.81246, -8.77312, -8.78756, -8.71028, -12.89176, -13.47205, -13.07872,
                              -8.70869, -11.29591, 0.842, -11.03578, -8.73547, -12.56954, -12.94674, -12.4872]),
    2: (-49105.49958610535, [-7.04585, -8.83368, -8.81839, -8.79138, -8.72119, -13.09031, -15.43057, -12.8555,
                             -8.74338, -11.9654, -4.57624, -12.23135, -8.74253, -12.62459, -12.9218, -12.46628]),
}


@pytest.mark.parametrize("depth", sorted(SHIPPED_REFERENCE))
def test_shipped_transformer_checkpoints_load_unchanged(depth):
    path = SHIPPED_DIR / f"anodfdnet-effnet-d{depth}.safetensors"
    if not path.is_file():
        pytest.skip(f"{path.name} is absent")
    info = read_info(path)
    assert (info.bottleneck, info.objective, info.model_summary) == ("transformer", "supervised", f"Transformer depth {depth}")
    model, _ = load_checkpoint(path)
    torch.manual_seed(0)
    h = torch.rand(1, 3, 64, 64) * 2 - 1
    c = h.clone()
    c[:, :, 20:36, 24:40] = 0.9
    with torch.no_grad():
        y = model(h, c).double()
    total, samples = SHIPPED_REFERENCE[depth]
    assert float(y.sum()) == pytest.approx(total, rel=1e-5)
    assert np.allclose(y[0, 0, ::16, ::16].flatten().numpy(), samples, atol=1e-3)


def _write_ab(root, pairs):
    for sub in ("A", "B", "label"):
        (root / sub).mkdir(parents=True)
    for i, p in enumerate(pairs):
        Image.fromarray(p.history).save(root / "A" / f"p{i}.png")
        Image.fromarray(p.current).save(root / "B" / f"p{i}.png")
        Image.fromarray(p.mask.astype(np.uint8) * 255).save(root / "label" / f"p{i}.png")
    return root


def test_normal_spec_gives_pairs_without_anomalies(tmp_path):
    pairs = [generate_pair(i, 64, anomaly="none") for i in range(3)] + [generate_pair(9, 64, anomaly="foreign_body")]
    root = _write_ab(tmp_path / "ab", pairs)
    src, plain = parse_spec(f"normal:ab:{root}"), parse_spec(f"ab:{root}")
    assert src.names == ["p0", "p1", "p2", "p3"] and src.key(0) == plain.key(0)  # the same split sides
    assert all(not p.mask.any() for p in src)
    assert np.array_equal(src[0].current, plain[0].current)  # a pair with an empty label stays as it is
    anomalous = src[3]  # a pair with an anomaly: its history against an altered copy of itself
    assert np.array_equal(anomalous.history, plain[3].history) and not np.array_equal(anomalous.current, plain[3].current)
    synth = parse_spec("normal:synth:3:4")
    assert all(p.mask is not None and not p.mask.any() for p in synth)
    assert synth[0].history.shape == (256, 256, 3)


def test_move_spec_shifts_the_history_by_the_given_amount():
    still, moved = parse_spec("move:0:0:synth:1:3"), parse_spec("move:16:0:synth:1:3")
    a, b = still[0], moved[0]
    assert a.current.shape == b.current.shape and np.array_equal(a.current, b.current)
    assert not np.array_equal(a.history, b.history)
    with pytest.raises(UserError, match="move:PIXELS"):
        parse_spec("move:100:0:synth:1")


def test_a_tiny_unsupervised_run_on_empty_label_pairs(tmp_path):
    pairs = [generate_pair(i, 64, anomaly="none") for i in range(4)] + [generate_pair(7, 64, anomaly="scratch")]
    root = _write_ab(tmp_path / "ab", pairs)
    labelled = _write_ab(tmp_path / "labelled", [generate_pair(20 + i, 64, anomaly="foreign_body") for i in range(2)])
    cfg = TrainConfig(data=[f"ab:{root}"], val=[f"ab:{labelled}"], out=str(tmp_path / "run"), preset="lite", depth=1,
                      bottleneck="i2c", objective="normal", size=64, epochs=1, steps_per_epoch=2, batch=2, workers=0,
                      cache=False, progress=False, threads=1, save_every=0)
    best = train(cfg)
    info = read_info(best)
    assert (info.bottleneck, info.objective) == ("i2c", "normal")
    assert info.meta["objective"] == "normal" and info.meta["bottleneck"] == "i2c"
    assert info.meta["data"] == [f"ab:{root}"] and 0 < info.threshold < 1
    model, _ = load_checkpoint(best)
    assert float(model.i2c.score_scale) > 0 and float(model.i2c.score_center) != 0.0  # calibrated on normal pairs
    assert info.meta["encoder_lr"] == 0.0  # the encoder stayed frozen: the features the patch discrepancy compares
    h, c = _pair(size=64)
    with torch.no_grad():
        p = torch.sigmoid(model(h, c))
    assert p.shape == (1, 1, 64, 64) and torch.isfinite(p).all()


def test_the_i2c_benchmark_report_is_written_from_what_has_run():
    from benchmarks.cli import build_parser
    from benchmarks.i2c import CLASSICAL, eval_sets, format_report, train_command, METHODS

    a = build_parser().parse_args(["i2c", "--work", "/tmp/w", "--shifts", "0", "16", "--rotations", "5"])
    assert a.budget_minutes == 8 and a.seeds == [0, 1, 2] and a.aligns == ["off", "auto"]
    sets = eval_sets([0, 16], [5])
    assert [s.spec for s in sets][-2:] == ["move:0:5:synth:2000@val", "move:16:5:synth:2000@val"]
    normal = next(m for m in METHODS if m.normal)
    cmd = train_command(normal, 1, __import__("pathlib").Path("/tmp/w"), 8)
    assert "--objective" in cmd and all(d.endswith("@train") for d in cmd[cmd.index("--data") + 1::2][:1])
    assert "Nothing has run yet" in format_report({}, sets, ["off"], "python -m benchmarks i2c --work DIR", 8, [0])
    fig = {"f1_cal": 0.5, "auc": 0.9, "threshold": 0.3, "pairs": 5}
    per_set = {s.key: {"off": fig} for s in sets}
    report = format_report({"i2c-d2": {0: per_set, 1: per_set}, CLASSICAL: {0: per_set}}, sets, ["off"], "cmd", 8, [0, 1])
    assert "| I2Correlation d2 | 2 | 50.0 ± 0.0" in report and "registered difference (classical, no training) | 1 | 50.0" in report
    # The summary: per seed a mean over the moved sets, then over seeds, and the difference from the Transformer d2.
    moved = {s.key: {"off": {**fig, "f1_cal": 0.4 if s.key.startswith("move-") else 0.8}} for s in sets}
    better = {s.key: {"off": {**fig, "f1_cal": 0.6 if s.key.startswith("move-") else 0.8}} for s in sets}
    summary = format_report({"transformer-d2": {0: moved, 1: moved}, "i2c-d2": {0: better, 1: moved}}, sets, ["off"], "cmd", 8, [0, 1])
    assert "| Transformer d2 (today's) | 2 | 80.0 ± 0.0 | 40.0 ± 0.0 | 40.0 ± 0.0 |" in summary
    assert "| I2Correlation d2 | 2 | 80.0 ± 0.0 (+0.0) | 50.0 ± 14.1 (+10.0) | 50.0 ± 14.1 (+10.0) |" in summary
    auto_only = {s.key: {"auto": v["off"]} for s, v in ((s, moved[s.key]) for s in sets)}  # scored with --aligns auto only
    assert "| unmoved sets, `--align auto` |" in format_report({"transformer-d2": {0: auto_only}}, sets, ["auto"], "cmd", 8, [0])
