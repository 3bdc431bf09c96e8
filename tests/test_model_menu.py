"""The Detect tab's model menu and heat view without a browser: validation F1 per set under short names
(never a server path), the heat map over the current image with unknown pixels grey and numbered boxes,
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


def test_menu_label_lists_f1_per_source(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "anodfdnet-menu-d2.safetensors"
    save_checkpoint(path, build_model(ModelConfig.from_preset("lite", 2)),
                    {"val_metrics": {"deeppcb:/srv/x/trainval.txt@val": {"f1": 0.772, "auc": 0.99},
                                     "synth:1000:1:hard@val": {"f1": 0.32}}})
    text = models.label(read_info(path))
    assert text.startswith("menu-d2 · Transformer depth 2 · val F1 DeepPCB 77.2%, synth hard 32.0% · ")
    assert "/" not in text


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
    assert models.label(read_info(path)).startswith("bare-d0 · Transformer depth 0 · no val F1 recorded · ")
