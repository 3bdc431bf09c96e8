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
    """(share of pixels near the threshold, mean binary entropy in bits) of a probability map.

    The same figures as from ``recentred`` (the entropy to 1e-4 relative or 1e-6 bits, tested), without its
    logs and exponentials: ``q = p (1 - t) / (p (1 - t) + (1 - p) t)`` is monotone in ``p``, so *near* is a range
    of ``p``; float32 (half the CPU time of float64 on a 512x512 map, where inspect runs it for every pair)."""
    prob = np.asarray(prob, np.float32)
    if not prob.size:
        return 0.0, 0.0
    t = min(max(float(threshold), _EPS), 1 - _EPS)
    lo, hi = (n * t / (n * t + (1 - n) * (1 - t)) for n in NEAR)  # the p at which q = NEAR[0], NEAR[1]
    near = np.count_nonzero((prob >= lo) & (prob <= hi)) / prob.size
    # q and 1 - q each from its own small side, so that float32 keeps both exact enough near 0 and 1.
    a = np.clip(prob, _EPS, 1 - _EPS) * np.float32(1 - t)
    b = np.clip(1 - prob, _EPS, 1 - _EPS) * np.float32(t)
    q, r = (np.clip(x / (a + b), _EPS, 1 - _EPS) for x in (a, b))
    entropy = -(q * np.log2(q) + r * np.log2(r))
    return float(near), float(entropy.mean(dtype=np.float64))
