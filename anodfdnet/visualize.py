"""Pictures of a probability map: the heat-map colouring shared by the CLI and the app."""
from __future__ import annotations

import os

import cv2
import numpy as np

from .data.images import save_indexed_png, save_rgb_png


UNKNOWN_RGB = (128, 128, 128)  # pixels the aligned history does not cover: unknown, drawn grey
REGION_RGB = (255, 230, 0)  # the outline of anomalous regions: the app's pictures and the inspection report's overlays
# (demo/live_view.js holds a copy: JavaScript cannot import it)


TURBO = cv2.cvtColor(cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO),
                     cv2.COLOR_BGR2RGB)[:, 0]  # 256x3 uint8: the colour of each quantised probability
TURBO.setflags(write=False)  # shared by every heatmap_indexed call that needs no unknown grey


def _levels(prob: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(prob, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def heatmap_rgb(prob: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """float HxW in [0, 1] -> uint8 HxWx3 RGB (the 'turbo' colour map: blue = normal, red = anomalous);
    grey (UNKNOWN_RGB) where ``valid`` (bool HxW) is False."""
    rgb = np.take(TURBO, _levels(prob), axis=0)  # OpenCV's turbo map, looked up (faster than applyColorMap here)
    if valid is not None:
        rgb[~valid] = UNKNOWN_RGB
    return rgb


def heatmap_indexed(prob: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The same picture as ``heatmap_rgb`` as (uint8 HxW palette indices, 256x3 uint8 RGB palette), which a PNG
    stores in about half the bytes and encodes about 4x faster (a model's 512x512 map: 4.0 against 7.1 kB, 1.2
    against 5.6 ms); ``palette[index]`` equals ``heatmap_rgb`` exactly. The unknown grey takes a probability level no covered pixel uses; None when every level is
    used (then only the RGB picture is exact)."""
    index = _levels(prob)
    if valid is None or valid.all():
        return index, TURBO
    # The levels the covered pixels use: OpenCV's histogram under a mask (0.2 ms on a 512x512 map; np.bincount
    # over index[valid] 0.5). Its float32 counts can lose units past 2**24 but never turn a used level into 0.
    used = cv2.calcHist([index], [0], np.ascontiguousarray(valid).view(np.uint8), [256], [0, 256]).reshape(-1)
    free = np.flatnonzero(used == 0)
    if free.size == 0:
        return None
    palette = TURBO.copy()
    palette[free[0]] = UNKNOWN_RGB
    index[~valid] = free[0]
    return index, palette


def save_heatmap_png(path: str | os.PathLike, prob: np.ndarray, valid: np.ndarray | None = None, text: dict | None = None,
                     compress_level: int = 6) -> None:
    """``heatmap_rgb(prob, valid)`` as a PNG, atomically: a palette PNG (``heatmap_indexed``) whenever that is
    exact, else RGB. Either shows the same colours; ``Image.open(path).convert("RGB")`` reads both back."""
    indexed = heatmap_indexed(prob, valid)
    if indexed is None:
        save_rgb_png(path, heatmap_rgb(prob, valid), text, compress_level)
    else:
        save_indexed_png(path, *indexed, text, compress_level)
