"""Pixel metrics as the AnoDFDNet paper defines them, accumulated over a whole test set in bounded memory.

The paper thresholds the probability map at 0.5, sums TP/FP/TN/FN over every pixel of the test set, and
derives precision, recall, overall accuracy (OA), F1 and IoU = TP / (TP + FP + FN) from the sums. It
also draws one pixel ROC over all pixels, from which come AUC and EER (the FPR where FPR = FNR).

``PixelMetrics`` does that with a fixed amount of state, whatever the number of pixels:

- the four counts at the threshold, exact;
- two histograms of the probabilities (one over ground-truth positives, one over negatives) with
  ``bins`` equal-width bins on [0, 1]. Bin ``i`` holds probabilities in ``[i/bins, (i+1)/bins)``, the last
  bin also holds 1.0. The ROC is evaluated at the bin edges ``i/bins``, so it is exact at those
  thresholds; pixels inside one bin count as ties, which moves AUC and EER by at most about ``1/bins``
  in the worst case and far less in practice.

All of the state is one int64 vector (``state()`` / ``load_state()``), so DDP ranks can sum it with a
single ``all_reduce`` and the result equals what one process would have counted.

Conventions used throughout the package:

- a pixel is predicted anomalous when ``prob >= threshold`` (``binarize``; use it everywhere);
- metrics are taken at the ground-truth mask's resolution: a probability map of another size is first
  resized to the mask's size with bilinear interpolation (half-pixel centres, ``cv2.INTER_LINEAR``,
  the same sampling as ``F.interpolate(..., mode="bilinear", align_corners=False)``);
- a ratio whose denominator is zero (e.g. precision with no predicted positives) is 0.0;
- AUC and EER are ``nan`` when the pixels seen so far hold no positives or no negatives (no ROC exists).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
import torch

THRESHOLD = 0.5
BINS = 10000
KEYS = ("pairs", "precision", "recall", "oa", "f1", "iou", "auc", "eer")

# Layout of the state vector: the scalar counters, then the positive and negative histograms.
_TP, _FP, _TN, _FN, _PAIRS = range(5)
_HEAD = 5


def binarize(prob, threshold: float = THRESHOLD):
    """The package's one thresholding rule: anomalous where ``prob >= threshold``.

    Accepts a numpy array or a torch tensor and returns a bool array of the same kind and shape.
    """
    return prob >= threshold


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _as_prob_map(prob) -> np.ndarray:
    p = _to_numpy(prob)
    while p.ndim > 2 and p.shape[0] == 1:  # tolerate 1 x H x W and 1 x 1 x H x W
        p = p[0]
    if p.ndim != 2:
        raise ValueError(f"expected an H x W probability map, got shape {p.shape}")
    p = p.astype(np.float32, copy=False)
    if p.size and not (np.isfinite(p).all() and p.min() >= 0.0 and p.max() <= 1.0):
        raise ValueError("probability map must hold finite values in [0, 1] (pass sigmoid(logits), not logits)")
    return p


def _as_mask(mask) -> np.ndarray:
    m = _to_numpy(mask)
    if m.ndim != 2:
        raise ValueError(f"expected an H x W mask, got shape {m.shape}")
    return m if m.dtype == np.bool_ else m > 0  # {0, 1} or {0, 255} masks are accepted too


def resize_prob(prob: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize an H x W float map to ``shape`` (rows, cols) with bilinear interpolation, clipped to [0, 1]."""
    if prob.shape == tuple(shape):
        return prob
    out = cv2.resize(prob, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0, out=out)


def _ratio(num: int, den: int) -> float:
    return float(num) / float(den) if den else 0.0


class PixelMetrics:
    """Accumulates the paper's pixel metrics over many (probability map, mask) pairs."""

    def __init__(self, threshold: float = THRESHOLD, bins: int = BINS):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        self.threshold = float(threshold)
        self.bins = int(bins)
        self._state = np.zeros(_HEAD + 2 * self.bins, dtype=np.int64)

    # -- accumulation -------------------------------------------------------------------------------
    def reset(self) -> None:
        self._state[:] = 0

    def update(self, prob, mask, valid=None) -> None:
        """Add one pair: ``prob`` float H x W in [0, 1] (numpy or torch), ``mask`` bool H x W.

        ``prob`` is resized (bilinear) to the mask's size when the two differ. ``valid`` (bool, the mask's
        size): only these pixels count, e.g. the part of the current view an aligned history covers.
        """
        m = _as_mask(mask)
        p = resize_prob(_as_prob_map(prob), m.shape)
        if valid is not None:
            v = _as_mask(valid)
            if v.shape != m.shape:
                raise ValueError(f"valid has shape {v.shape}, the mask {m.shape}")
            m, p = m[v], p[v]
        pred = binarize(p, self.threshold)
        s = self._state
        npos = int(np.count_nonzero(m))
        tp = int(np.count_nonzero(pred & m))
        npred = int(np.count_nonzero(pred))
        s[_TP] += tp
        s[_FN] += npos - tp
        s[_FP] += npred - tp
        s[_TN] += m.size - npos - (npred - tp)
        s[_PAIRS] += 1
        idx = np.minimum((p.astype(np.float64) * self.bins).astype(np.int64), self.bins - 1)
        b = self.bins
        s[_HEAD : _HEAD + b] += np.bincount(idx[m], minlength=b)
        s[_HEAD + b :] += np.bincount(idx[~m], minlength=b)

    # -- state for DDP and checkpoints --------------------------------------------------------------
    def state(self) -> torch.Tensor:
        """All accumulated state as one int64 tensor: [TP, FP, TN, FN, pairs, hist_pos..., hist_neg...].

        Summing the states of several accumulators (e.g. ``dist.all_reduce``) merges them exactly.
        """
        return torch.from_numpy(self._state.copy())

    def load_state(self, t) -> None:
        a = _to_numpy(t).astype(np.int64).reshape(-1)
        if a.shape != self._state.shape:
            raise ValueError(f"state has {a.size} entries, expected {self._state.size} for bins={self.bins}")
        self._state[:] = a

    def merge(self, other: "PixelMetrics") -> "PixelMetrics":
        """Add another accumulator's counts into this one (same threshold and bins); returns self."""
        if (other.threshold, other.bins) != (self.threshold, self.bins):
            raise ValueError("cannot merge PixelMetrics with a different threshold or number of bins")
        self._state += other._state
        return self

    # -- results ------------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        s = self._state
        return {"tp": int(s[_TP]), "fp": int(s[_FP]), "tn": int(s[_TN]), "fn": int(s[_FN])}

    @property
    def pairs(self) -> int:
        return int(self._state[_PAIRS])

    def roc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ROC over all pixels seen: ``(fpr, tpr, thresholds)``, thresholds descending from inf to 0.

        Point k counts a pixel as positive when ``prob >= thresholds[k]``; fpr and tpr run from 0 to 1.
        With no positives (or no negatives) tpr (or fpr) is all zeros.
        """
        b = self.bins
        pos = self._state[_HEAD : _HEAD + b]
        neg = self._state[_HEAD + b :]
        # Positives at threshold i/b are the pixels in bins i..b-1: reversed cumulative sums.
        tp = np.concatenate([[0], np.cumsum(pos[::-1])])
        fp = np.concatenate([[0], np.cumsum(neg[::-1])])
        thresholds = np.concatenate([[np.inf], np.arange(b - 1, -1, -1, dtype=np.float64) / b])
        tpr = tp / tp[-1] if tp[-1] else np.zeros(b + 1)
        fpr = fp / fp[-1] if fp[-1] else np.zeros(b + 1)
        return fpr.astype(np.float64), tpr.astype(np.float64), thresholds

    def compute(self) -> dict:
        """``pairs`` (int) and precision, recall, oa, f1, iou, auc, eer (floats in [0, 1] or nan)."""
        c = self.counts()
        tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
        out = {"pairs": self.pairs, **scores(tp, fp, tn, fn)}
        if tp + fn == 0 or tn + fp == 0:
            out["auc"] = out["eer"] = float("nan")
        else:
            fpr, tpr, _ = self.roc()
            out["auc"] = auc(fpr, tpr)
            out["eer"] = eer(fpr, tpr)
        return out


    # -- other thresholds, from the histograms ------------------------------------------------------
    def _counts_at_edges(self) -> tuple[np.ndarray, np.ndarray, int, int]:
        """TP and FP when thresholding at every bin edge k/bins (k = 0..bins), and the totals."""
        b = self.bins
        pos = self._state[_HEAD : _HEAD + b]
        neg = self._state[_HEAD + b :]
        tp = np.concatenate([np.cumsum(pos[::-1])[::-1], [0]])  # pixels with prob >= k/b
        fp = np.concatenate([np.cumsum(neg[::-1])[::-1], [0]])
        return tp, fp, int(pos.sum()), int(neg.sum())

    def f1_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """``(thresholds, f1)``: F1 at every bin edge k/bins, k = 0..bins (exact at those thresholds)."""
        tp, fp, npos, _ = self._counts_at_edges()
        den = tp + fp + npos  # 2TP + FP + FN
        f1 = np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)
        return np.arange(self.bins + 1, dtype=np.float64) / self.bins, f1

    def counts_at(self, threshold: float) -> dict[str, int]:
        """tp, fp, tn, fn at another threshold, from the histograms (at the nearest bin edge)."""
        k = int(round(float(threshold) * self.bins))
        tp_all, fp_all, npos, nneg = self._counts_at_edges()
        tp, fp = int(tp_all[k]), int(fp_all[k])
        return {"tp": tp, "fp": fp, "tn": nneg - fp, "fn": npos - tp}

    def at(self, threshold: float) -> dict:
        """precision, recall, oa, f1, iou at another threshold, from the histograms: exact when
        ``threshold * bins`` is an integer (any threshold with at most 4 decimals at the default bins),
        otherwise at the nearest bin edge."""
        c = self.counts_at(threshold)
        return {"threshold": int(round(float(threshold) * self.bins)) / self.bins, **scores(**c)}


def scores(tp: int, fp: int, tn: int, fn: int) -> dict:
    """precision, recall, oa, f1 and iou from pixel counts."""
    return {"precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn), "oa": _ratio(tp + tn, tp + fp + tn + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn), "iou": _ratio(tp, tp + fp + fn)}


def best_threshold(metrics: list["PixelMetrics"], lo: float = 0.02, hi: float = 0.98) -> tuple[float, float]:
    """The threshold in [lo, hi] that maximises the mean F1 over several sets (each set's F1 counted once,
    so a large set does not outvote a small one), and that mean F1. Ties go to the threshold nearest 0.5."""
    if not metrics:
        raise ValueError("best_threshold needs at least one set of metrics")
    thresholds, f1 = metrics[0].f1_curve()
    mean = np.mean([m.f1_curve()[1] for m in metrics], axis=0)
    ok = np.flatnonzero((thresholds >= lo) & (thresholds <= hi))
    top = mean[ok].max()
    candidates = ok[mean[ok] >= top - 1e-12]
    k = candidates[np.argmin(np.abs(thresholds[candidates] - 0.5))]
    return float(thresholds[k]), float(mean[k])


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under a ROC given as increasing fpr, by the trapezoid rule."""
    fpr = np.asarray(fpr, np.float64)
    tpr = np.asarray(tpr, np.float64)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def eer(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Equal error rate: the FPR where FPR = FNR = 1 - TPR, interpolated linearly between ROC points."""
    fpr = np.asarray(fpr, np.float64)
    d = fpr - (1.0 - np.asarray(tpr, np.float64))  # non-decreasing from -1 to +1 along the ROC
    k = int(np.argmax(d >= 0))
    if d[k] == 0 or k == 0:
        return float(fpr[k])
    a = -d[k - 1] / (d[k] - d[k - 1])
    return float(fpr[k - 1] + a * (fpr[k] - fpr[k - 1]))


# -- reporting ---------------------------------------------------------------------------------------
_COLS = (("pairs", "pairs"), ("precision", "P"), ("recall", "R"), ("oa", "OA"), ("f1", "F1"), ("iou", "IoU"), ("auc", "AUC"), ("eer", "EER"))


def format_header(name_width: int = 20) -> str:
    """Header for ``format_row``: name, pairs, then the metrics in percent."""
    return f"{'name':<{name_width}} " + " ".join(f"{label:>7}" for _, label in _COLS)


def format_row(name: str, m: dict, name_width: int = 20) -> str:
    """One fixed-width table row: pairs as an int, the rest in percent with two decimals like the paper."""
    cells = [f"{int(m['pairs']):>7d}"]
    for key, _ in _COLS[1:]:
        v = m[key]
        cells.append(f"{'n/a':>7}" if v is None or math.isnan(v) else f"{100.0 * v:>7.2f}")
    return f"{name:<{name_width}} " + " ".join(cells)


# -- ROC figure --------------------------------------------------------------------------------------
def _title_lines(text: str, font, width: int) -> list[tuple[str, float]]:
    """``text`` as at most three lines that fit ``width`` pixels: one line at a smaller size if that does, else
    broken at spaces (a word too long for a line is cut with '...'); [(line, font scale)]."""
    fits = lambda t, sc: cv2.getTextSize(t, font, sc, 1)[0][0] <= width  # noqa: E731
    for scale in (0.55, 0.5, 0.45):
        if fits(text, scale):
            return [(text, scale)]
    scale, lines = 0.45, [""]
    for word in text.split(" "):
        joined = f"{lines[-1]} {word}" if lines[-1] else word
        if fits(joined, scale):
            lines[-1] = joined
            continue
        lines.append(word)
        while not fits(lines[-1], scale):
            lines[-1] = lines[-1][:-4] + "..."
    lines = [line for line in lines if line]
    if len(lines) > 3:
        lines = lines[:2] + ["... " + lines[-1]]
    return [(line, scale) for line in lines]


def plot_roc(fpr, tpr, path, title: str = "", size: int = 480) -> Path:
    """Write a PNG of the ROC curve (axes, ticks, chance diagonal, curve, AUC in the title); drawn with cv2."""
    fpr = np.asarray(fpr, np.float64)
    tpr = np.asarray(tpr, np.float64)
    black, grey, blue = (0, 0, 0), (170, 170, 170), (180, 90, 20)  # BGR
    font = cv2.FONT_HERSHEY_SIMPLEX
    left, right, bottom = 70, 20, 60
    w = h = size
    a = auc(fpr, tpr) if fpr.size > 1 else float("nan")
    head = f"{title}  (AUC {100 * a:.2f}%)" if title else f"ROC  (AUC {100 * a:.2f}%)"
    lines = _title_lines(head, font, left + w + right - 8)
    top = 25 + 20 * len(lines)
    img = np.full((top + h + bottom, left + w + right, 3), 255, np.uint8)

    def xy(x: float, y: float) -> tuple[int, int]:
        return int(round(left + x * w)), int(round(top + (1.0 - y) * h))

    # grid, ticks and their labels
    for t in np.linspace(0.0, 1.0, 6):
        gx, gy = xy(t, 0.0)[0], xy(0.0, t)[1]
        cv2.line(img, (gx, top), (gx, top + h), (235, 235, 235), 1)
        cv2.line(img, (left, gy), (left + w, gy), (235, 235, 235), 1)
        cv2.line(img, (gx, top + h), (gx, top + h + 5), black, 1)
        cv2.line(img, (left - 5, gy), (left, gy), black, 1)
        label = f"{t:.1f}"
        (tw, th), _ = cv2.getTextSize(label, font, 0.4, 1)
        cv2.putText(img, label, (gx - tw // 2, top + h + 8 + th), font, 0.4, black, 1, cv2.LINE_AA)
        cv2.putText(img, label, (left - 8 - tw, gy + th // 2), font, 0.4, black, 1, cv2.LINE_AA)
    # chance diagonal, dashed
    n = 40
    for i in range(0, n, 2):
        cv2.line(img, xy(i / n, i / n), xy((i + 1) / n, (i + 1) / n), grey, 1, cv2.LINE_AA)
    # the curve
    if fpr.size:
        pts = np.stack([left + fpr * w, top + (1.0 - tpr) * h], 1)
        pts = np.round(pts).astype(np.int32)
        keep = np.ones(len(pts), bool)
        keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)  # drop repeated pixels (10k ROC points)
        cv2.polylines(img, [pts[keep].reshape(-1, 1, 2)], False, blue, 2, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (left + w, top + h), black, 1)
    # axis labels and title
    xl = "False positive rate"
    (tw, th), _ = cv2.getTextSize(xl, font, 0.5, 1)
    cv2.putText(img, xl, (left + (w - tw) // 2, top + h + 45), font, 0.5, black, 1, cv2.LINE_AA)
    yl = "True positive rate"
    (tw, th), base = cv2.getTextSize(yl, font, 0.5, 1)
    strip = np.full((th + base + 4, tw + 4, 3), 255, np.uint8)
    cv2.putText(strip, yl, (2, th + 2), font, 0.5, black, 1, cv2.LINE_AA)
    strip = cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE)
    y0 = top + (h - strip.shape[0]) // 2
    img[y0 : y0 + strip.shape[0], 10 : 10 + strip.shape[1]] = strip
    for i, (line, scale) in enumerate(lines):  # the title, centred on the whole figure, every line inside it
        (tw, th), _ = cv2.getTextSize(line, font, scale, 1)
        cv2.putText(img, line, (max(4, (img.shape[1] - tw) // 2), 22 + 20 * i), font, scale, black, 1, cv2.LINE_AA)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise OSError(f"could not encode the ROC figure for {path}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)
    return path
