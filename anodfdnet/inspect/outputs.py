"""What inspection keeps of one pair: its scores and regions (one results row) and its files.

Both engines call the same two functions, so a pair gives the same row whichever engine ran it:

- ``thumbnails(history, current)`` right after the pair is read (small JPEG-ready arrays: the pair itself
  is not kept after the model input is made);
- ``finish_pair(...)`` after the model: scores, regions, the mask and heat-map PNGs (with the threshold and the
  alignment in their text chunks, as ``predict`` writes them), the overlay thumbnail, and the row.

Files of a pair live under RUN, named by ``file_id(id)`` (the id made safe for a file name, plus a hash of the
id so that two ids never share a file): ``masks/F_mask.png``, ``heat/F_heat.png``, ``masks/F_uncovered.png``
(only when the aligned history leaves part of the view uncovered) and ``thumbs/F_{h,c,o}.jpg``.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..data.images import save_mask_png
from ..metrics import binarize
from ..predict import BATCH_PNG_LEVEL, png_text
from ..uncertainty import uncertainty
from ..visualize import REGION_RGB, save_heatmap_png

THUMB_SIDE = 160  # long side of the report's thumbnails, in pixels
MAX_REGIONS = 50  # regions kept per row (largest first); n_regions counts them all
TINT = np.array([255, 40, 40], np.float32)


def file_id(pid: str) -> str:
    """A file-name-safe, collision-free stem for a pair id."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(pid)).strip("._")[:60] or "pair"
    return f"{safe}-{hashlib.blake2b(str(pid).encode(), digest_size=4).hexdigest()}"


def thumbnail(img: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """``img`` shrunk so that its long side is ``side``. Where a whole number k >= 2 of pixels fits the shrink
    and divides both sides, k x k blocks are averaged first (OpenCV's fast area path; the largest such k) and
    the rest is bilinear: 0.11 ms instead of 0.93 for 512 -> 160 (k = 2), at 46 dB PSNR against area averaging
    all the way."""
    h, w = img.shape[:2]
    s = side / max(h, w)
    if s >= 1:
        return np.ascontiguousarray(img)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    k = next((k for k in range(int(1 / s), 1, -1) if h % k == 0 and w % k == 0), 1)
    if k < 2:
        return cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    blocks = cv2.resize(img, (w // k, h // k), interpolation=cv2.INTER_AREA)
    return cv2.resize(blocks, size, interpolation=cv2.INTER_LINEAR)


def thumbnails(history: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return thumbnail(history), thumbnail(current)


def regions(prob: np.ndarray, mask: np.ndarray) -> tuple[int, list[dict]]:
    """(number of 8-connected regions of the mask, the largest MAX_REGIONS as dicts: box x, y, w, h in pixels of
    the current image, area in pixels, max and mean probability inside).

    The labelling runs on the mask's bounding rectangle only (a mask covers a few % of a map: 0.1 against 1.6 ms
    of CPU on a 512x512 map), and its boxes are moved back to the whole map's pixels."""
    m = mask.view(np.uint8)
    x0, y0, w0, h0 = cv2.boundingRect(m)  # of the nonzero pixels; all zero for an empty mask
    if w0 == 0 or h0 == 0:
        return 0, []
    prob = prob[y0:y0 + h0, x0:x0 + w0]
    n, labels, stats, _ = cv2.connectedComponentsWithStats(np.ascontiguousarray(m[y0:y0 + h0, x0:x0 + w0]),
                                                           connectivity=8, ltype=cv2.CV_32S)
    if n <= 1:
        return 0, []
    order = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA], kind="stable")[:MAX_REGIONS]
    boxes = stats[order, cv2.CC_STAT_WIDTH].astype(np.int64) * stats[order, cv2.CC_STAT_HEIGHT]
    if boxes.sum() <= 2 * prob.size:  # the usual case: read each kept region inside its own box
        def inside(k, x, y, w, h):
            return prob[y:y + h, x:x + w][labels[y:y + h, x:x + w] == k]
        figures = {int(k): (float(v.max()), float(v.sum(dtype=np.float64))) for k in order
                   for v in [inside(k, *(int(c) for c in stats[k, :4]))]}
    else:  # many large overlapping boxes: one pass over the labelled pixels
        flat = labels.ravel()
        values = np.ascontiguousarray(prob).ravel()
        sums = np.bincount(flat, weights=values, minlength=n)
        maxes = np.zeros(n, np.float64)
        np.maximum.at(maxes, flat[flat > 0], values[flat > 0])
        figures = {int(k): (float(maxes[k]), float(sums[k])) for k in order}
    out = []
    for k in order:
        x, y, w, h, area = (int(v) for v in stats[k, :5])
        peak, total = figures[int(k)]
        out.append({"x": x + x0, "y": y + y0, "w": w, "h": h, "area": area, "max_prob": peak,
                    "mean_prob": total / max(area, 1)})
    return n - 1, out


def _overlay(cur_thumb: np.ndarray, mask: np.ndarray, regs: list[dict] = ()) -> np.ndarray:
    """The current thumbnail with the anomalous pixels tinted red and each region of ``regs`` (boxes in the mask's
    pixels) outlined in yellow with a dark edge, a pixel or two outside its box, so that a region of a few pixels
    still shows at thumbnail size, on light and dark images alike."""
    if not mask.any():  # a normal pair, most of an archive: nothing to tint (the resize below is 0.4 ms)
        return cur_thumb
    th, tw = cur_thumb.shape[:2]
    m = cv2.resize(mask.view(np.uint8), (tw, th), interpolation=cv2.INTER_AREA) > 0
    out = cur_thumb.astype(np.float32)
    out[m] = 0.45 * out[m] + 0.55 * TINT
    out = out.astype(np.uint8)
    sx, sy = tw / mask.shape[1], th / mask.shape[0]
    for r in regs:
        x0, y0 = int(np.floor(r["x"] * sx)) - 2, int(np.floor(r["y"] * sy)) - 2
        x1, y1 = int(np.ceil((r["x"] + r["w"]) * sx)) + 1, int(np.ceil((r["y"] + r["h"]) * sy)) + 1
        cv2.rectangle(out, (x0 - 1, y0 - 1), (x1 + 1, y1 + 1), (0, 0, 0), 1)  # a dark edge: seen on white too
        cv2.rectangle(out, (x0, y0), (x1, y1), REGION_RGB, 1)
    return out


def _jpeg(path: Path, img: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(img).save(tmp, format="JPEG", quality=82)
    tmp.replace(path)


def finish_pair(run: Path, pid: str, index: int, prob: np.ndarray, alignment, thumbs: tuple[np.ndarray, np.ndarray],
                threshold: float) -> dict:
    """Write the pair's files under ``run`` and return its results row (``results.SCHEMA``'s columns but
    ``attempt``). ``alignment``: the pair's ``anodfdnet.align.Alignment``."""
    run = Path(run)
    fid = file_id(pid)
    mask = np.ascontiguousarray(binarize(prob, threshold))
    n_regions, regs = regions(prob, mask)
    near, entropy = uncertainty(prob, threshold)
    meta = alignment.meta()  # once: the PNGs' text chunks and the row
    text = png_text(alignment, threshold, meta)
    mask_png, heat_png = f"masks/{fid}_mask.png", f"heat/{fid}_heat.png"
    save_mask_png(run / mask_png, mask, text, BATCH_PNG_LEVEL)
    save_heatmap_png(run / heat_png, prob, alignment.valid, text, BATCH_PNG_LEVEL)
    if alignment.valid is not None:
        save_mask_png(run / f"masks/{fid}_uncovered.png", ~alignment.valid, text, BATCH_PNG_LEVEL)
    hist_t, cur_t = thumbs
    _jpeg(run / f"thumbs/{fid}_h.jpg", hist_t)
    _jpeg(run / f"thumbs/{fid}_c.jpg", cur_t)
    _jpeg(run / f"thumbs/{fid}_o.jpg", _overlay(cur_t, mask, regs))
    return {"id": str(pid), "index": int(index), "file_id": fid, "height": int(prob.shape[0]), "width": int(prob.shape[1]),
            "score_max": float(prob.max()) if prob.size else 0.0, "score_mean": float(prob.mean()) if prob.size else 0.0,
            "area_pct": float(mask.mean() * 100) if mask.size else 0.0, "n_regions": n_regions, "regions": regs,
            "uncertain_pct": near * 100, "entropy": entropy, "aligned": bool(meta["aligned"]),
            "align_verdict": meta["align_verdict"], "uncovered_pct": float(meta["uncovered_pct"]),
            "alignment": meta, "mask_png": mask_png, "heat_png": heat_png}


def make_dirs(run: Path) -> None:
    for d in ("masks", "heat", "thumbs"):
        (Path(run) / d).mkdir(parents=True, exist_ok=True)
