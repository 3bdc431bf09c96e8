"""The Detect tab's live view: the slider redraws in the page, and what it draws is the server's mask.

The level map (``demo.render.threshold_levels``) must give, at every slider step, exactly the mask
``binarize`` gives; the page must draw exactly that mask, and the overlay from it, after single steps
(incremental redraws), jumps (full redraws) and a new prediction. Checked against the mask file the
server writes for the same step (the mask download), in a real browser.
"""
from __future__ import annotations

import base64
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from anodfdnet.data import synth
from anodfdnet.metrics import binarize
from demo import live, render

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")


def _edge_probs(seed: int = 0, shape=(120, 90)) -> np.ndarray:
    """Random probabilities plus every slider threshold exactly and its float32 neighbours."""
    rng = np.random.default_rng(seed)
    p = rng.random(shape, dtype=np.float32)
    t = np.array([render.slider_threshold(k) for k in range(render.SLIDER_STEPS + 1)], np.float32)
    edges = np.concatenate([t, np.nextafter(t, np.float32(0)), np.nextafter(t, np.float32(2)), [0, 1e-30, 1]])
    p.flat[: edges.size] = np.clip(edges, 0, 1)
    return p


def test_level_map_gives_the_servers_mask_at_every_slider_step():
    for seed in range(3):
        p = _edge_probs(seed)
        levels = render.threshold_levels(p)
        assert levels.dtype == np.uint8 and levels.shape == p.shape
        for k in range(render.SLIDER_STEPS + 1):
            t = render.slider_threshold(k)
            assert t == k / 100  # the float the page's slider sends for step k
            assert np.array_equal(levels > k, binarize(p, t)), f"step {k}"
    with pytest.raises(ValueError):
        render.threshold_levels(np.zeros((4, 4)))  # float64: not the model's map
    with pytest.raises(ValueError):
        render.threshold_levels(np.full((4, 4), np.nan, np.float32))


def test_live_value_files_and_counts(tmp_path, monkeypatch):
    p = _edge_probs(1, (60, 80))
    current = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    v = live.live_value(p, current, 0.5, tmp_path)
    assert (v["width"], v["height"], v["full_width"], v["full_height"]) == (80, 60, 80, 60)
    assert v["image"]["meta"] == {"_type": "gradio.FileData"} and Path(v["image"]["path"]).parent == tmp_path
    stored = np.array(Image.open(v["levels"]["path"]))
    assert np.array_equal(stored, render.threshold_levels(p))  # lossless
    assert v["counts"] == [int(binarize(p, k / 100).sum()) for k in range(101)]

    monkeypatch.setattr(live, "MAX_PIXELS", 1200)  # a large image is shown subsampled; counts stay exact
    v = live.live_value(p, current, 0.5, tmp_path)
    assert v["width"] * v["height"] <= 1200 and (v["full_width"], v["full_height"]) == (80, 60)
    assert v["counts"][50] == int(binarize(p, 0.5).sum())


# --- In the browser --------------------------------------------------------------------------------------

READ_PAGE = """() => {
  const d = window.__anodfdnetLive.data;
  const get = (sel) => document.querySelector(sel).getContext('2d').getImageData(0, 0, d.w, d.h).data;
  const b64 = (u8) => { let s = ''; for (let i = 0; i < u8.length; i += 8192) s += String.fromCharCode.apply(null, u8.subarray(i, i + 8192)); return btoa(s); };
  return { w: d.w, h: d.h, step: d.k,
           overlay: b64(get('#live-view canvas[data-part=overlay]')), mask: b64(get('#live-view canvas[data-part=mask]')),
           base: b64(new Uint8Array(d.base.buffer)), tinted: b64(new Uint8Array(d.tinted.buffer)) };
}"""


def _rgba(text: str, h: int, w: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), np.uint8).reshape(h, w, 4)


def _expected_overlay(mask: np.ndarray, base: np.ndarray, tinted: np.ndarray) -> np.ndarray:
    """The page's overlay rule: tint inside the mask, the outline colour within r outside it (a square)."""
    h, w = mask.shape
    r = max(2, int(np.floor(max(h, w) / 256 + 0.5)))
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)).astype(bool) & ~mask
    out = base.copy()
    out[mask] = tinted[mask]
    out[ring] = (*render.OUTLINE, 255)
    return out


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)")
def test_the_page_draws_exactly_the_servers_mask_as_the_slider_moves(app_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    pair = synth.generate_pair(21, size=320, hardness="easy", anomaly="oil_leak")
    h, w = 240, 320  # not square: rows and columns must not be swapped anywhere
    hist, cur = tmp_path / "h.png", tmp_path / "c.png"
    Image.fromarray(pair.history[:h]).save(hist)
    Image.fromarray(pair.current[:h]).save(cur)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(app_server, wait_until="load")
        page.locator("#history-input input[type=file]").set_input_files(str(hist))
        page.locator("#current-input input[type=file]").set_input_files(str(cur))
        expect(page.locator("#current-input img")).to_be_visible()
        number = page.locator("#threshold input[type=number]")
        number.fill("0.3")
        number.press("Enter")
        page.locator("#anodfdnet-run").click()
        expect(page.locator("#summary")).to_contain_text("at threshold 0.30")
        page.wait_for_function(f"() => window.__anodfdnetLive && window.__anodfdnetLive.data && window.__anodfdnetLive.data.w === {w}")
        slider = page.locator("#threshold input[type=range]")

        def check(step: int, how: str) -> None:
            page.wait_for_function(f"() => document.querySelector('#live-view canvas[data-part=overlay]').dataset.step === '{step}'")
            expect(page.locator("#summary")).to_contain_text(f"at threshold {step / 100:.2f}")
            with page.expect_download() as download:
                page.locator("#mask-download").click()
            server = np.array(Image.open(download.value.path())) > 0
            got = page.evaluate(READ_PAGE)
            assert (got["w"], got["h"], got["step"]) == (w, h, step)
            drawn_mask = _rgba(got["mask"], h, w)
            assert np.array_equal(drawn_mask[..., 0] == 255, server), f"{how}: the page's mask differs from the server's"
            assert set(np.unique(drawn_mask[..., 0])) <= {0, 255} and (drawn_mask[..., 3] == 255).all()
            expected = _expected_overlay(server, _rgba(got["base"], h, w), _rgba(got["tinted"], h, w))
            diff = np.argwhere((_rgba(got["overlay"], h, w) != expected).any(axis=2))
            assert diff.size == 0, f"{how}: {len(diff)} overlay pixels differ, e.g. at {diff[:3].tolist()}"
            match = re.search(r"\(([\d,]+) of", page.locator("#summary").inner_text())
            assert int(match.group(1).replace(",", "")) == int(server.sum())

        check(30, "after Run")
        step = 30
        for key, how in (("ArrowRight", "one step up"), ("ArrowRight", "another"), ("ArrowLeft", "one step down")):
            slider.press(key)  # focuses the range input (the download click took the focus), then one real key press
            step += 1 if key == "ArrowRight" else -1
            check(step, how)
        slider.focus()
        for key in ["ArrowLeft"] * 25:  # a fast run of steps
            page.keyboard.press(key)
        step -= 25
        check(step, "after 25 quick steps")
        number.fill("0.02")  # a jump over many levels: the page redraws everything
        number.press("Enter")
        check(2, "a jump to 0.02")
        number.fill("0.81")
        number.press("Enter")
        check(81, "a jump to 0.81")
        browser.close()
