"""What a reviewer sees and decides: labelled pairs, lowest agreement first, and their verdicts. No Gradio here.

A pair is waiting for review when it has at least k answers (``ANODFDNET_LABELS_PER_PAIR``) and no review
newer than its newest answer. :meth:`ReviewQueue.next_for` serves the waiting pairs in order of mask
agreement, lowest first (pairs with one answer, whose agreement is unknown, after those with two or
more), each held for one reviewer at a time (one hold per reviewer, 10 minutes) so two reviewers do not
judge the same pair at once. :meth:`ReviewQueue.view` gathers what the page shows: both images, every
annotator's mask with its IoU against the consensus, the consensus, the pairwise IoUs, and each of these
annotators' gold score (mean IoU with the gold masks; only reviewers see it).
:meth:`ReviewQueue.decide` writes the verdict as a new row (``LabelStore.save_review``): ``accept`` and
``reject`` store the consensus of exactly the answers the reviewer was shown (their row ids travel in
the session's state on the server, never from the page), ``correct`` stores the reviewer's mask.
"""
from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from anodfdnet.data.label_policies import Agreement, PairLabels, agreement, consensus_mask, consensus_type, mask_iou
from anodfdnet.errors import UserError

from .store import LabelStore, SavedRow
from .summary import gold_scores


@dataclass
class Answer:
    row_id: str
    annotator: str
    identity: str
    anomaly_type: str
    mask: np.ndarray
    iou_consensus: float


@dataclass
class ReviewView:
    content_hash: str
    history: np.ndarray
    current: np.ndarray
    answers: list[Answer]
    consensus: np.ndarray
    consensus_type: str
    agreement: Agreement
    source: str
    verdict: str | None  # the pair's latest verdict, if it was reviewed before
    gold: dict[str, tuple[float | None, int]] = field(default_factory=dict)  # annotator -> (mean gold IoU, gold pairs)

    @property
    def row_ids(self) -> list[str]:
        return [a.row_id for a in self.answers]


def _decode(png: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(png)).convert("RGB"))


class ReviewQueue:
    def __init__(self, store: LabelStore, k: int, hold_s: float = 600.0):
        self.store = store
        self.k = k
        self.hold_s = hold_s
        self._holds: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def waiting(self) -> list[tuple[PairLabels, Agreement]]:
        """Pairs waiting for review, lowest agreement first."""
        snap = self.store.snapshot()
        out = [(p, snap.agreement(p)) for p in snap.pairs.values()
               if not p.is_gold and len(p.answers) >= self.k and p.review_pending]
        out.sort(key=lambda pa: (pa[1].mask is None, pa[1].mask if pa[1].mask is not None else 0.0,
                                 max(r.order for r in pa[0].answers.values())))
        return out

    def next_for(self, reviewer: str) -> ReviewView | None:
        with self._lock:
            self._holds.pop(reviewer, None)
            now = time.monotonic()
            held = {h for h, t in self._holds.values() if now - t < self.hold_s}
            for pair, _ in self.waiting():
                if pair.content_hash not in held:
                    self._holds[reviewer] = (pair.content_hash, now)
                    break
            else:
                return None
        return self.view(pair.content_hash)

    def release(self, reviewer: str) -> None:
        with self._lock:
            self._holds.pop(reviewer, None)

    def view(self, content_hash: str, row_ids: list[str] | None = None) -> ReviewView:
        """The pair as the reviewer sees it: its current answers, or exactly the rows ``row_ids``."""
        snap = self.store.snapshot()
        pair = snap.pairs.get(content_hash)
        if pair is None or not pair.answers:
            raise UserError("that pair has no label to review.")
        rows = pair.answer_rows()
        if row_ids is not None:  # exactly the answers shown, even if newer ones arrived since
            wanted = set(row_ids)
            rows = [r for r in snap.rows if r.id in wanted and r.content_hash == content_hash and r.kind == "label"]
            if not rows or len(rows) != len(wanted):
                raise UserError("the answers shown are not all in the store; load the pair again.")
        masks = self.store.masks([r.id for r in rows])
        cons = consensus_mask(masks)
        images = self.store.read_row(rows[0].id, ("history", "current", "source"))
        answers = [Answer(r.id, r.annotator, r.identity, r.anomaly_type, m, mask_iou(m, cons)) for r, m in zip(rows, masks)]
        ag = agreement([(r.annotator, r.anomaly_type, m) for r, m in zip(rows, masks)])
        scores = gold_scores(snap.pairs)  # the annotators' gold scores: reviewers see them, annotators never do
        return ReviewView(content_hash, _decode(images["history"]["bytes"]), _decode(images["current"]["bytes"]), answers,
                          cons, consensus_type([r.anomaly_type for r in rows], not cons.any()), ag, images["source"],
                          pair.review.verdict if pair.review is not None else None,
                          {a.annotator: scores[a.annotator] for a in answers if a.annotator in scores})

    def decide(self, content_hash: str, row_ids: list[str], reviewer: str, identity: str, verdict: str,
               mask: np.ndarray | None = None, anomaly_type: str | None = None, note: str = "") -> SavedRow:
        """Write a verdict on the answers ``row_ids`` of a pair (see the module docstring)."""
        if verdict in ("accept", "reject"):
            v = self.view(content_hash, row_ids)
            mask, anomaly_type = v.consensus, v.consensus_type
        elif verdict == "correct":
            if mask is None:
                raise UserError("paint the corrected mask first.")
            if anomaly_type is None:
                raise UserError("choose the anomaly type of the corrected mask.")
        else:
            raise UserError("the verdict must be accept, reject or correct.")
        row = self.store.save_review(content_hash, reviewer, verdict, mask, anomaly_type, note, identity)
        self.release(reviewer)
        return row
