"""The Detect tab's live view: overlay and mask redrawn in the browser as the threshold slider moves.

The server's part (no model, no Gradio beyond the component): after a prediction, ``live_value`` writes
the current image (JPEG, for display) and the uint8 level map of ``render.threshold_levels`` (PNG,
lossless) into Gradio's cache and returns the component's value; ``live_view.js`` then thresholds, tints
and outlines on a canvas on every slider input, without a request. The page's mask is exactly the
server's (``level > k`` is ``binarize(prob, k / 100)`` for every slider step k) up to 2048x2048 pixels
(larger images are shown subsampled); the overlay's outline is drawn with a square instead of OpenCV's
elliptical dilation, a display detail. What the API returns
(/predict, /rethreshold) is still computed on the server.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import gradio as gr
import numpy as np

from . import render

JS = (Path(__file__).with_name("live_view.js")).read_text()
ELEM_ID = "live-view"
MAX_PIXELS = 2048 * 2048  # the page holds about 25 bytes a pixel: ~100 MB at this size

TEMPLATE = """
<div class="anod-live" data-part="root" data-ready="0">
  <div class="anod-panes" data-part="panes">
    <figure class="anod-pane">
      <figcaption>Current image, anomalies tinted red and outlined</figcaption>
      <canvas data-part="overlay" aria-label="overlay"></canvas>
    </figure>
    <figure class="anod-pane">
      <figcaption>Anomaly mask (white = anomalous)</figcaption>
      <canvas data-part="mask" class="anod-mask" aria-label="mask"></canvas>
    </figure>
  </div>
  <div class="anod-bar">
    <span data-part="caption" class="anod-caption">Results appear here after <b>Run</b>.</span>
    <a href="#" data-part="download">Download overlay (PNG)</a>
    <button type="button" data-part="fullscreen">Full screen</button>
  </div>
</div>
"""

CSS = """
.anod-panes { display: flex; gap: 12px; }
.anod-pane { flex: 1; margin: 0; min-width: 0; display: flex; flex-direction: column; }
.anod-pane figcaption { font-size: var(--text-sm); color: var(--body-text-color-subdued); margin-bottom: 4px; }
.anod-pane canvas { width: 100%; height: 340px; object-fit: contain; background: var(--block-background-fill); }
.anod-pane canvas.anod-mask { background: #c8c8c8; }
.anod-live[data-ready="0"] canvas { visibility: hidden; }
.anod-live[data-ready="0"] [data-part=download], .anod-live[data-ready="0"] [data-part=fullscreen] { display: none; }
.anod-bar { display: flex; gap: 16px; align-items: center; margin-top: 6px; font-size: var(--text-sm); }
.anod-bar a, .anod-bar button { font: inherit; font-size: var(--text-sm); font-weight: normal; color: var(--link-text-color);
  background: none; border: none; padding: 0; margin: 0; text-decoration: underline; cursor: pointer; }
.anod-caption { flex: 1; }
.anod-panes:fullscreen { background: black; }
@media (max-width: 640px) {
  .anod-panes { flex-direction: column; }
  .anod-pane canvas { height: 260px; }
  .anod-bar { flex-wrap: wrap; gap: 6px 16px; }
}
.anod-panes:fullscreen canvas { height: 100vh; }
"""

# The slider's `js=` handler: redraw in this tab, in the same event turn as the input, no request.
ON_SLIDER = "(t) => { const v = window.__anodfdnetLive; if (v && v.render) v.render(t); }"


def build(slider_id: str) -> gr.HTML:
    """The live view component (render it where the overlay and mask go)."""
    return gr.HTML(
        None, html_template=TEMPLATE, css_template=CSS, js_on_load=JS, elem_id=ELEM_ID, slider_id=slider_id,
        padding=False, container=False,
    )


def _file(path: Path) -> dict:
    """A file output Gradio moves into its cache (already there) and serves by URL."""
    return {"path": str(path), "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def live_value(prob: np.ndarray, current: np.ndarray, threshold: float, folder: Path) -> dict:
    """The component's value for one prediction: image and level map files, size, per-step pixel counts.

    Up to MAX_PIXELS the page gets every pixel (its mask is the server's, pixel for pixel); a larger
    image is shown subsampled to MAX_PIXELS (nearest pixels of the level map), which the caption says.
    The counts are always those of the full-resolution map."""
    levels = render.threshold_levels(prob)
    hist = np.bincount(levels.ravel(), minlength=render.SLIDER_STEPS + 2)
    above = np.cumsum(hist[::-1])[::-1]  # above[j] = pixels whose level >= j
    counts = [int(above[k + 1]) for k in range(render.SLIDER_STEPS + 1)]  # anomalous pixels at step k
    full_size = (int(current.shape[1]), int(current.shape[0]))
    h, w = levels.shape
    if h * w > MAX_PIXELS:
        scale = (MAX_PIXELS / (h * w)) ** 0.5
        size = (max(1, int(w * scale)), max(1, int(h * scale)))
        levels = cv2.resize(levels, size, interpolation=cv2.INTER_NEAREST)
        current = cv2.resize(current, size, interpolation=cv2.INTER_AREA)
    image = folder / "current.jpg"
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(current, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise OSError("could not encode the current image")
    image.write_bytes(buf.tobytes())
    level_png = render.write_png(levels, folder / "levels.png")
    return {
        "image": _file(image), "levels": _file(level_png), "width": int(current.shape[1]),
        "height": int(current.shape[0]), "full_width": full_size[0], "full_height": full_size[1],
        "threshold": float(threshold), "counts": counts,
    }
