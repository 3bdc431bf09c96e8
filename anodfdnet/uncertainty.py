"""How unsure a model is about a pair: the share of pixels its probability puts near its own threshold.

With the probability re-centred on the threshold, ``q = sigmoid(logit(p) - logit(t))``, a pixel is *uncertain*
when ``q`` lies within [0.2, 0.8] (odds within a factor of 4 of the threshold's). A pair's uncertainty is the
share of such pixels (the area the model cannot decide), and the mean binary entropy of ``q`` breaks ties (how
undecided the rest of the map is). Both are in [0, 1]. The Label queue (``annotate/uncertainty.py``) and batch
inspection (``anodfdnet.inspect``) rank pairs by it.
"""
from __future__ import annotations

import numpy as np

NEAR = (0.2, 0.8)
_EPS = 1e-6


def recentred(prob: np.ndarray, threshold: float) -> np.ndarray:
    """``sigmoid(logit(prob) - logit(threshold))``: 0.5 exactly at the threshold."""
    p = np.clip(np.asarray(prob, np.float64), _EPS, 1 - _EPS)
    t = min(max(float(threshold), _EPS), 1 - _EPS)
    z = np.log(p / (1 - p)) - np.log(t / (1 - t))
    return 1.0 / (1.0 + np.exp(-z))


def uncertainty(prob: np.ndarray, threshold: float) -> tuple[float, float]:
    """(share of pixels near the threshold, mean binary entropy in bits) of a probability map."""
    q = recentred(prob, threshold)
    near = float(np.mean((q >= NEAR[0]) & (q <= NEAR[1]))) if q.size else 0.0
    qc = np.clip(q, _EPS, 1 - _EPS)
    entropy = float(np.mean(-(qc * np.log2(qc) + (1 - qc) * np.log2(1 - qc)))) if q.size else 0.0
    return near, entropy
