"""Heat-map PNGs (predict, inspect): palette PNGs that show exactly ``heatmap_rgb``'s colours, RGB when a palette
cannot hold the picture exactly."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from anodfdnet.data.images import save_indexed_png
from anodfdnet.visualize import UNKNOWN_RGB, heatmap_indexed, heatmap_rgb, save_heatmap_png


def test_heat_map_png_shows_exactly_heatmap_rgb(tmp_path):
    prob = np.random.default_rng(0).random((40, 50), dtype=np.float32) ** 3
    valid = np.ones(prob.shape, bool)
    valid[:, :7] = False
    for name, v in (("covered", None), ("uncovered", valid)):
        path = tmp_path / f"{name}.png"
        save_heatmap_png(path, prob, v, {"anodfdnet.threshold": "0.5"})
        img = Image.open(path)
        assert img.mode == "P" and img.text["anodfdnet.threshold"] == "0.5"
        assert np.array_equal(np.array(img.convert("RGB")), heatmap_rgb(prob, v)), name
    assert (np.array(Image.open(tmp_path / "uncovered.png").convert("RGB"))[:, :7] == UNKNOWN_RGB).all()


def test_a_map_using_every_level_falls_back_to_rgb(tmp_path):
    prob = np.tile(np.arange(256, dtype=np.float32) / 255, (5, 1))
    valid = np.ones(prob.shape, bool)
    valid[4] = False  # every level is used by a covered pixel: no palette index is free for the grey
    assert heatmap_indexed(prob, valid) is None
    save_heatmap_png(tmp_path / "h.png", prob, valid)
    img = Image.open(tmp_path / "h.png")
    assert img.mode == "RGB" and np.array_equal(np.array(img), heatmap_rgb(prob, valid))
    index, palette = heatmap_indexed(prob, None)  # all covered: the plain turbo palette, every level exact
    assert np.array_equal(palette[index], heatmap_rgb(prob))


def test_indexed_png_refuses_what_it_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="256x3"):
        save_indexed_png(tmp_path / "x.png", np.zeros((4, 4), np.uint8), np.zeros((16, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8 HxW"):
        save_indexed_png(tmp_path / "x.png", np.zeros((4, 4), np.int32), np.zeros((256, 3), np.uint8))
    assert not list(tmp_path.iterdir())
