"""Pictures of a probability map: the heat-map colouring shared by the CLI and the app."""
from __future__ import annotations

import cv2
import numpy as np


UNKNOWN_RGB = (128, 128, 128)  # pixels the aligned history does not cover: unknown, drawn grey


def heatmap_rgb(prob: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """float HxW in [0, 1] -> uint8 HxWx3 RGB (the 'turbo' colour map: blue = normal, red = anomalous);
    grey (UNKNOWN_RGB) where ``valid`` (bool HxW) is False."""
    grey = np.clip(np.asarray(prob, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    if valid is not None:
        rgb[~valid] = UNKNOWN_RGB
    return rgb
