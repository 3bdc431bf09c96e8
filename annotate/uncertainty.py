"""How unsure a model is about a pair, so the Label queue can serve the pairs a person's label helps most first.

A pixel is *uncertain* when the model puts it near its own threshold: with the probability re-centred on the
threshold, ``q = sigmoid(logit(p) - logit(t))``, when ``q`` lies within [0.2, 0.8] (odds within a factor of 4
of the threshold's). A pair's uncertainty is the share of such pixels (the area the model cannot decide), and
the mean binary entropy of ``q`` breaks ties (how undecided the rest of the map is). Both are in [0, 1].

:class:`UncertaintyScores` scores the queue's pairs in a background thread with one model, once each, in
queue order; the queue (``queue.LabelQueue.next_for(..., order="uncertain")``) serves scored pairs most
uncertain first, then the ones not scored yet in queue order. No Gradio here.
"""
from __future__ import annotations

import threading

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


class UncertaintyScores:
    """Scores of a queue's pairs under one predictor, filled by a background thread started on first use.

    ``pairs``: a callable giving (content hash, history, current) for queue index i, and the queue's length."""

    def __init__(self, predictor, threshold: float | None = None):
        self.predictor = predictor
        self.threshold = predictor.threshold if threshold is None else float(threshold)
        self.scores: dict[str, tuple[float, float]] = {}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.failed: dict[str, str] = {}

    def start(self, count: int, pair_at) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._fill, args=(count, pair_at), daemon=True, name="queue-uncertainty")
            self._thread.start()

    def _fill(self, count: int, pair_at) -> None:
        for i in range(count):
            try:
                h, hist, cur = pair_at(i)
                if h in self.scores:
                    continue
                self.scores[h] = uncertainty(self.predictor.predict(hist, cur), self.threshold)
            except Exception as e:  # an unreadable pair is skipped here; serving it says what is wrong
                self.failed[str(i)] = f"{type(e).__name__}: {e}"

    @property
    def done(self) -> int:
        return len(self.scores)

    def rank(self, content_hash: str) -> tuple[int, float, float]:
        """Sort key part: scored pairs first, most uncertain first (near share, then entropy)."""
        s = self.scores.get(content_hash)
        return (1, 0.0, 0.0) if s is None else (0, -s[0], -s[1])
