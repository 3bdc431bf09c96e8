"""The heat map laid over the current image, its legend, and the regions' numbered boxes. No Gradio here.

``heat_overlay(prob, current, valid, opacity, regions)`` blends the heat-map colours
(``anodfdnet.visualize.heatmap_rgb``: blue 0 → red 1) over the current image at ``opacity``, paints the
pixels the aligned history does not cover in the legend's grey (unknown, never anomalous; ``mark_unknown``
greys them in the overlay and the live view too), and draws each
region's box with its number, the number the summary lists it under. ``legend_html()`` is the colour bar
made from the same colour map, so what the legend shows is what the picture uses.
"""
from __future__ import annotations

import cv2
import numpy as np

from anodfdnet.visualize import UNKNOWN_RGB, heatmap_rgb

BOX = (255, 255, 255)  # RGB of the region boxes (with a dark edge, visible on any colour)
DEFAULT_OPACITY = 0.5


def heat_overlay(prob: np.ndarray, current: np.ndarray, valid: np.ndarray | None, opacity: float,
                 regions: list | None = None) -> np.ndarray:
    """uint8 HxWx3: current blended with the heat map at ``opacity`` (0 = the photo, 1 = the heat map), grey
    where ``valid`` is False, and the regions' boxes numbered 1, 2, ... (largest first)."""
    a = float(min(1.0, max(0.0, opacity)))
    out = cv2.addWeighted(heatmap_rgb(prob), a, current, 1.0 - a, 0.0)
    if valid is not None:
        out[~valid] = mark_unknown(current, valid, max(a, 0.6))[~valid]
    h, w = prob.shape
    t = max(1, int(round(max(h, w) / 400)))
    scale = max(0.4, max(h, w) / 900)
    for i, r in enumerate(regions or [], start=1):
        x0, y0, x1, y1 = r.x - t, r.y - t, r.x + r.width + t - 1, r.y + r.height + t - 1
        cv2.rectangle(out, (x0, y0), (x1, y1), (0, 0, 0), 3 * t)
        cv2.rectangle(out, (x0, y0), (x1, y1), BOX, t)
        label = str(i)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, t)
        ty = y0 - 3 * t if y0 - th - 4 * t > 0 else y1 + th + 3 * t
        tx = min(max(0, x0), max(0, w - tw))
        cv2.putText(out, label, (tx, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3 * t, cv2.LINE_AA)
        cv2.putText(out, label, (tx, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, BOX, t, cv2.LINE_AA)
    return out


def mark_unknown(img: np.ndarray, valid: np.ndarray | None, strength: float = 0.6) -> np.ndarray:
    """``img`` with the pixels the aligned history does not cover blended towards the legend's grey (the
    overlay and the live view show them so); ``img`` itself when everything is covered."""
    if valid is None:
        return img
    grey = np.empty_like(img)
    grey[:] = UNKNOWN_RGB
    out = img.copy()
    out[~valid] = cv2.addWeighted(grey, strength, img, 1.0 - strength, 0.0)[~valid]
    return out


def _css(rgb) -> str:
    return "#%02x%02x%02x" % tuple(int(c) for c in rgb)


def legend_html(stops: int = 11) -> str:
    """A colour bar from the heat map's own colouring (probability 0 → 1), with the unknown grey and the box."""
    colours = heatmap_rgb(np.linspace(0.0, 1.0, stops, dtype=np.float32)[None, :])[0]
    gradient = ", ".join(f"{_css(c)} {100 * i / (stops - 1):.0f}%" for i, c in enumerate(colours))
    return (
        '<div class="anod-legend" id="heat-legend">'
        f'<div class="anod-legend-bar" data-part="bar" style="background: linear-gradient(to right, {gradient});"></div>'
        '<div class="anod-legend-ticks"><span>0 normal</span><span>0.5</span><span>1 anomalous</span></div>'
        '<div class="anod-legend-keys">'
        f'<span><i class="anod-swatch" style="background:{_css(UNKNOWN_RGB)}"></i>not covered by the history: unknown</span>'
        '<span><i class="anod-swatch anod-box"></i>a region above the threshold, numbered as listed below</span>'
        '</div></div>'
    )


LEGEND_CSS = """
.anod-legend { font-size: var(--text-sm); margin: 4px 0 8px; }
.anod-legend-bar { height: 14px; border-radius: 3px; }
.anod-legend-ticks { display: flex; justify-content: space-between; color: var(--body-text-color-subdued); }
.anod-legend-keys { display: flex; flex-wrap: wrap; gap: 4px 16px; margin-top: 4px; }
.anod-swatch { display: inline-block; width: 14px; height: 14px; vertical-align: -2px; margin-right: 6px; border-radius: 2px; }
.anod-box { border: 2px solid #fff; outline: 1px solid #000; background: transparent; }
"""
