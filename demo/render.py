"""Pictures and figures of one prediction at one threshold: overlay, mask, regions. No Gradio here.

``render(prob, current, threshold)`` is the whole re-threshold step the app runs when the slider
moves; it only thresholds and draws (vectorised numpy / OpenCV), it never touches the model:

    mask     = binarize(prob, threshold)            (the package's one rule: prob >= threshold)
    overlay  = current, tinted red inside the mask, every region outlined in yellow
    regions  = 8-connected components of the mask with their boxes, largest first

The heat map does not depend on the threshold; its colouring is ``anodfdnet.visualize.heatmap_rgb``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from anodfdnet.metrics import binarize
from anodfdnet.inference.runtime import DESCRIPTIONS as PATH_NAMES
from anodfdnet.visualize import REGION_RGB, heatmap_rgb

TINT = (255, 32, 32)  # RGB of the tint inside anomalous regions
TINT_ALPHA = 0.45
OUTLINE = REGION_RGB  # RGB of the region outlines
MAX_BOXES = 50  # boxes listed in the figures (largest first); the count is always exact

__all__ = ["Region", "RenderResult", "render", "heatmap_rgb", "encode_png", "write_png", "format_summary",
           "SLIDER_STEPS", "slider_threshold", "threshold_levels"]

# The page's threshold slider moves in steps of 1 / SLIDER_STEPS; ``threshold_levels`` encodes the mask
# of every one of those thresholds in one uint8 image, so the browser can redraw without the server.
SLIDER_STEPS = 100


@dataclass(frozen=True)
class Region:
    """One connected anomalous region: its bounding box (pixels of the current image) and area."""

    x: int
    y: int
    width: int
    height: int
    area: int

    def to_dict(self) -> dict:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height, "area": self.area}


@dataclass
class RenderResult:
    threshold: float
    mask: np.ndarray  # bool HxW
    overlay: np.ndarray  # uint8 HxWx3 RGB
    regions: list[Region] = field(default_factory=list)  # largest first, at most MAX_BOXES
    n_regions: int = 0  # the exact number of regions (may exceed len(regions))
    anomalous_pixels: int = 0

    @property
    def area_pct(self) -> float:
        return 100.0 * self.anomalous_pixels / self.mask.size if self.mask.size else 0.0

    def figures(self) -> dict:
        h, w = self.mask.shape
        return {
            "threshold": round(float(self.threshold), 6),
            "image_width": int(w),
            "image_height": int(h),
            "anomalous_pixels": int(self.anomalous_pixels),
            "anomalous_area_pct": round(self.area_pct, 4),
            "regions": int(self.n_regions),
            "boxes": [r.to_dict() for r in self.regions],
        }


def _outline_width(h: int, w: int) -> int:
    return max(2, int(round(max(h, w) / 256)))


def render(prob: np.ndarray, current: np.ndarray, threshold: float) -> RenderResult:
    """Threshold ``prob`` (float32 HxW in [0, 1]) and draw the result over ``current`` (uint8 HxWx3).

    Both must have the same height and width. About 10-20 ms for 1024x1024 on one CPU core.
    """
    prob = np.asarray(prob)
    if prob.ndim != 2:
        raise ValueError(f"prob must be HxW, got shape {prob.shape}")
    if current.shape[:2] != prob.shape or current.ndim != 3 or current.shape[2] != 3 or current.dtype != np.uint8:
        raise ValueError(f"current must be uint8 {prob.shape[0]}x{prob.shape[1]}x3, got {current.dtype} {current.shape}")
    threshold = float(threshold)
    mask = np.ascontiguousarray(binarize(prob, threshold))
    m8 = mask.view(np.uint8)  # 0/1 without a copy
    n_px = int(cv2.countNonZero(m8))
    overlay = np.array(current, order="C", copy=True)
    if n_px == 0:
        return RenderResult(threshold, mask, overlay)

    # Tint: scale the whole image, add the tint colour, copy the blend in where the mask is set.
    blended = cv2.convertScaleAbs(overlay, alpha=1.0 - TINT_ALPHA)
    cv2.add(blended, tuple(TINT_ALPHA * c for c in TINT) + (0.0,), dst=blended)
    cv2.copyTo(blended, m8, overlay)

    # Outlines: a ring just outside every region (and inside every hole), set to the outline colour.
    k = 2 * _outline_width(*mask.shape) + 1
    ring = cv2.dilate(m8, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    cv2.subtract(ring, m8, dst=ring)
    cv2.subtract(overlay, (255.0, 255.0, 255.0, 0.0), dst=overlay, mask=ring)
    cv2.add(overlay, tuple(float(c) for c in OUTLINE) + (0.0,), dst=overlay, mask=ring)

    # Regions: 8-connected components; row 0 of stats is the background.
    n, _labels, stats, _ = cv2.connectedComponentsWithStats(m8, connectivity=8, ltype=cv2.CV_32S)
    stats = stats[1:]
    order = np.argsort(-stats[:, cv2.CC_STAT_AREA], kind="stable")[:MAX_BOXES]
    regions = [Region(*(int(v) for v in stats[i, :5])) for i in order]
    return RenderResult(threshold, mask, overlay, regions, n - 1, n_px)


# ---------------------------------------------------------------------------------------------------
# Every slider threshold at once


def slider_threshold(k: int) -> float:
    """The threshold of slider step ``k`` (0..SLIDER_STEPS): exactly the float the page's slider sends."""
    return round(k / SLIDER_STEPS, 6)


_LEVELS = np.array([slider_threshold(k) for k in range(SLIDER_STEPS + 1)], np.float32)


def threshold_levels(prob: np.ndarray) -> np.ndarray:
    """uint8 HxW: for each pixel, how many slider thresholds it reaches, so that for every step k

        levels > k   ==   binarize(prob, slider_threshold(k))        (the server's mask, bit for bit)

    ``binarize`` compares the float32 map with the threshold as float32; so does this (searchsorted on
    the float32 thresholds counts those <= prob). Sent to the page once per prediction as a PNG."""
    prob = np.asarray(prob)
    if prob.dtype != np.float32:
        raise ValueError(f"prob must be float32, got {prob.dtype}")
    if prob.size and not (prob.min() >= 0.0 and prob.max() <= 1.0):  # also catches NaN
        raise ValueError("prob must lie in [0, 1]")
    # searchsorted(_LEVELS, prob, "right") is the definition; this is the same count in a quarter of the
    # time: a first guess from prob * steps, then one exact float32 comparison each way (the guess is off
    # by at most one step, only next to a threshold).
    k = np.clip(prob * np.float32(SLIDER_STEPS), 0, SLIDER_STEPS).astype(np.uint8)
    k -= (_LEVELS[k] > prob).view(np.uint8)  # never below 0: _LEVELS[0] is 0 and prob >= 0
    up = _LEVELS[np.minimum(k + np.uint8(1), np.uint8(SLIDER_STEPS))] <= prob
    up &= k < SLIDER_STEPS
    k += up.view(np.uint8)
    k += np.uint8(1)
    return k


# ---------------------------------------------------------------------------------------------------
# PNG files


def encode_png(img: np.ndarray, level: int = 1) -> bytes:
    """PNG bytes of an RGB uint8 image or a mask (bool -> {0, 255} greyscale). Level 1: fast, still small."""
    if img.dtype == bool:
        arr = img.view(np.uint8) * np.uint8(255)
    elif img.ndim == 3:
        arr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    else:
        arr = img
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, int(level)])
    if not ok:
        raise OSError("could not encode a PNG")
    return buf.tobytes()


def write_png(img: np.ndarray, path: str | os.PathLike, level: int = 1) -> Path:
    """Write ``encode_png(img)`` to ``path`` atomically (temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(encode_png(img, level))
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------------
# Figures as text


def format_summary(fig: dict, max_boxes: int = 8) -> str:
    """Markdown for a person: area, regions with boxes, inference time and device, notes."""
    lines = []
    regions = fig.get("regions", 0)
    lines.append(
        f"**Anomalous area:** {fig['anomalous_area_pct']:.2f}% of the image "
        f"({fig['anomalous_pixels']:,} of {fig['image_width'] * fig['image_height']:,} pixels) "
        f"at threshold {fig['threshold']:.2f}"
    )
    if regions == 0:
        lines.append("**Regions:** none: nothing above the threshold.")
    else:
        boxes = fig.get("boxes", [])[:max_boxes]
        listed = "; ".join(
            f"#{i + 1} at ({b['x']}, {b['y']}) size {b['width']}x{b['height']}" for i, b in enumerate(boxes)
        )
        more = f"; and {regions - len(boxes)} smaller" if regions > len(boxes) else ""
        lines.append(f"**Regions:** {regions} (largest first, box = x, y, width x height): {listed}{more}.")
    if "inference_seconds" in fig:
        model = f"{fig['checkpoint']} (Transformer depth {fig['depth']})" if "checkpoint" in fig else ""
        lines.append(
            f"**Inference:** {1000 * fig['inference_seconds']:.0f} ms on {fig['device']}"
            + (f" ({PATH_NAMES.get(fig['inference_path'], fig['inference_path'])})" if "inference_path" in fig else "")
            + (f", model {model}" if model else "")
            + (f", model input {fig['model_input'][1]}x{fig['model_input'][0]} pixels" if "model_input" in fig else "")
        )
    for note in fig.get("notes", []):
        lines.append(f"**Note:** {note}")
    return "\n\n".join(lines)
