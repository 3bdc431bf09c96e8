"""Pictures of a probability map: the heat-map colouring shared by the CLI and the app."""
from __future__ import annotations

import cv2
import numpy as np


def heatmap_rgb(prob: np.ndarray) -> np.ndarray:
    """float HxW in [0, 1] -> uint8 HxWx3 RGB (the 'turbo' colour map: blue = normal, red = anomalous)."""
    grey = np.clip(np.asarray(prob, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
