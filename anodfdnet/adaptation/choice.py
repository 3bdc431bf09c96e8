"""Which model a domain gets, decided on labelled pairs no candidate was trained on.

With a handful of labels, a threshold or a model chosen on the pairs it was fitted to looks better than it
is. So every figure here is *cross-fitted*: the labelled pairs are split into folds; a candidate's maps of
fold f come from a model that never saw fold f, and where the candidate's threshold is fitted from labels,
fold f is scored at the threshold fitted on the other folds only. A candidate's held-out F1 is then computed
from the pixel counts summed over every fold (each fold at its own threshold), and the spread is the
standard deviation of the per-fold F1.

The candidates, simplest first:

- ``before``: the checkpoint as it is, at its own threshold;
- ``threshold``: the same weights at a threshold fitted to the domain's labels;
- ``adapted``: the weights fine-tuned on the labels (``run``), at a threshold fitted the same way.

The choice is the simplest candidate that no more complex one beats by ``min_gain`` F1 (default half a
point): a domain is never served a model that did worse on its held-out pairs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..metrics import PixelMetrics, best_threshold, scores

CANDIDATES = ("before", "threshold", "adapted")
MIN_GAIN = 0.005


def pooled(metrics: list[PixelMetrics]) -> PixelMetrics:
    """One accumulator holding the counts of several (same threshold and bins)."""
    out = PixelMetrics(metrics[0].threshold, metrics[0].bins)
    for m in metrics:
        out.merge(m)
    return out


def fitted_threshold(metrics: list[PixelMetrics]) -> float:
    """The threshold that maximises F1 over these pairs' pixels taken together (0.5 with no anomalous pixel)."""
    m = pooled(metrics)
    if m.counts()["tp"] + m.counts()["fn"] == 0:
        return 0.5
    return best_threshold([m])[0]


@dataclass
class HeldOut:
    """A candidate's cross-fitted figures: per fold its threshold and F1, and the pooled F1."""

    name: str
    thresholds: list[float]
    fold_f1: list[float]
    f1: float
    iou: float
    precision: float
    recall: float

    @property
    def spread(self) -> float:
        return float(np.std(self.fold_f1)) if len(self.fold_f1) > 1 else 0.0

    def as_dict(self) -> dict:
        return {"f1": self.f1, "iou": self.iou, "precision": self.precision, "recall": self.recall,
                "fold_f1": self.fold_f1, "fold_f1_std": self.spread, "fold_thresholds": self.thresholds}


def cross_fitted(name: str, folds: list[list[PixelMetrics]], threshold: float | None = None) -> HeldOut:
    """Held-out figures of one candidate. ``folds[f]``: the metrics of fold f's pairs, made by a model that
    did not train on them. ``threshold``: a fixed threshold (``before``); None fits one per fold on the
    other folds' pairs."""
    total = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    thresholds, fold_f1 = [], []
    for f, fold in enumerate(folds):
        others = [m for g, other in enumerate(folds) if g != f for m in other]
        t = threshold if threshold is not None else (fitted_threshold(others) if others else 0.5)
        c = pooled(fold).counts_at(t)
        for k in total:
            total[k] += c[k]
        thresholds.append(t)
        fold_f1.append(scores(**c)["f1"])
    s = scores(**total)
    return HeldOut(name, thresholds, fold_f1, s["f1"], s["iou"], s["precision"], s["recall"])


def choose(results: dict[str, HeldOut], min_gain: float = MIN_GAIN) -> str:
    """The simplest candidate that no more complex one beats by ``min_gain`` held-out F1."""
    chosen = None
    for name in CANDIDATES:
        if name not in results:
            continue
        if chosen is None or results[name].f1 >= results[chosen].f1 + min_gain:
            chosen = name
    if chosen is None:
        raise ValueError("no candidate to choose from")
    return chosen
