"""The Detect tab's model menu and heat view without a browser: a short menu label, the checkpoint's recorded
validation F1 per set under short names (never a server path) with what they are, the README quoting them, the heat map over the current image with unknown pixels grey and numbered boxes,
and a legend drawn from the heat map's own colours."""
import numpy as np
import torch

from anodfdnet.checkpoint import read_info, save_checkpoint
from anodfdnet.models import ModelConfig, build_model
from anodfdnet.visualize import UNKNOWN_RGB, heatmap_rgb
from demo import heat, models, render


def test_short_source_names_hide_paths():
    assert models.short_source("deeppcb:/srv/secret/deeppcb/trainval.txt@val") == "DeepPCB"
    assert models.short_source("ba:/srv/secret/tunnel_synthetic@val") == "tunnel_synthetic"
    assert models.short_source("synth:3000@val") == "synth"
    assert models.short_source("synth:1000:1:hard@val") == "synth hard"
    assert models.short_source("hf:/srv/labels") == "labels"
    assert models.short_source("warp:1:ab:/x/levir/") == "levir moved 1"


def test_menu_label_is_short_and_the_figures_line_says_what_they_are(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "anodfdnet-menu-d2.safetensors"
    save_checkpoint(path, build_model(ModelConfig.from_preset("lite", 2)),
                    {"val_metrics": {"deeppcb:/srv/x/trainval.txt@val": {"f1": 0.772, "f1_at_threshold": 0.781, "pairs": 60},
                                     "synth:1000:1:hard@val": {"f1": 0.32, "f1_at_threshold": 0.35, "pairs": 40}},
                     "threshold": 0.3, "train": {"align": "off"}})
    info = read_info(path)
    assert models.label(info) == f"menu-d2 · Transformer depth 2 · {info.size_mb:.1f} MB"
    text = models.figures_text(info)
    assert "/" not in text.replace("(`checkpoints/evaluate.sh`)", "")
    assert "at its calibrated threshold 0.30" in text and "DeepPCB 78.1 % (60 pairs), synth hard 35.0 % (40 pairs)" in text
    assert "alignment off" in text and "native size" in text or "input long side" in text
    assert models.recorded_figures(info) == [("DeepPCB", 0.781, 60, True), ("synth hard", 0.35, 40, True)]


def test_the_shipped_checkpoints_figures_are_the_readmes(tmp_path):
    """The README quotes the app's menu figures for effnet-d2: the same numbers as the checkpoint records."""
    from pathlib import Path

    from conftest import shipped_checkpoint

    ckpt = shipped_checkpoint("effnet-d2")
    if ckpt is None:
        return
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name, f1, n, _ in models.recorded_figures(read_info(ckpt)):
        assert f"{name} {100 * f1:.1f} % ({n} pairs)" in readme, (name, f1, n)


def test_heat_overlay_greys_unknown_pixels_and_boxes_regions():
    prob = np.zeros((64, 64), np.float32)
    prob[20:30, 20:30] = 0.9
    cur = np.full((64, 64, 3), 100, np.uint8)
    valid = np.ones((64, 64), bool)
    valid[:, :8] = False
    regions = render.render(prob, cur, 0.5).regions
    out = heat.heat_overlay(prob, cur, valid, 1.0, regions)
    assert (out[:, :4] == UNKNOWN_RGB).all()  # opacity 1: exactly the legend's grey
    assert (out[40:60, 40:60] == heatmap_rgb(np.zeros((1, 1), np.float32))[0, 0]).all()  # the heat map's own colour
    assert (out[19, 22:28] == heat.BOX).all()  # the box just outside the region
    assert np.array_equal(heat.heat_overlay(prob, cur, None, 0.0), cur)  # opacity 0: the photo


def test_legend_is_the_heat_maps_colours():
    html = heat.legend_html(stops=3)
    for p in (0.0, 0.5, 1.0):
        rgb = heatmap_rgb(np.float32([[p]]))[0, 0]
        assert "#%02x%02x%02x" % tuple(int(c) for c in rgb) in html
    assert "not covered by the history" in html


def test_unknown_pixels_are_greyed_in_the_overlay_too():
    img = np.full((8, 8, 3), 200, np.uint8)
    valid = np.ones((8, 8), bool)
    valid[0] = False
    out = heat.mark_unknown(img, valid, 1.0)
    assert (out[0] == UNKNOWN_RGB).all() and (out[1:] == 200).all() and heat.mark_unknown(img, None) is img


def test_menu_label_without_metrics(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "anodfdnet-bare-d0.safetensors"
    save_checkpoint(path, build_model(ModelConfig.from_preset("lite", 0)), {})
    info = read_info(path)
    assert models.label(info).startswith("bare-d0 · Transformer depth 0 · ")
    assert models.figures_text(info) == "**bare-d0** records no validation figures."
