"""How unsure a model is about a pair, so the Label queue can serve the pairs a person's label helps most first.

The score itself (the share of pixels near the model's threshold, then the entropy) is defined in
``anodfdnet/uncertainty.py``, so batch inspection ranks pairs the same way.

:class:`UncertaintyScores` scores the queue's pairs in a background thread with one model, once each, in
queue order; the queue (``queue.LabelQueue.next_for(..., order="uncertain")``) serves scored pairs most
uncertain first, then the ones not scored yet in queue order. No Gradio here.
"""
from __future__ import annotations

import threading

from anodfdnet.uncertainty import NEAR, recentred, uncertainty  # noqa: F401  (the definition, owned by the library)


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
