"""Which label rows training reads: agreement between annotators, the consensus mask, and the three policies.

The label dataset (``anodfdnet/data/labels.py`` defines its columns) is append-only. Its rows are of three
kinds: ``label`` (an annotator's answer for a pair), ``gold`` (an answer for a *gold* pair, whose mask is
known: it scores the annotator and never trains) and ``review`` (a reviewer's verdict on a pair: accept,
reject, or a corrected mask). Everything here is a plain function of the rows' columns (:class:`RowInfo`)
and, where masks matter, of a callback that returns a row's mask; the ``hf:`` reader and the ``annotate``
store, status, review and export all use these functions, so they agree on every number.

Per pair (``content_hash``):

- each annotator's **answer** is their latest ``label`` row (``created_at``, then ``id``); an earlier row of
  the same annotator is *superseded* (it stays in the dataset, training ignores it);
- **agreement** of n >= 2 answers is the mean over the n(n-1)/2 pairs of annotators of the IoU of their
  masks (two empty masks agree: IoU 1), and the share of those pairs that chose the same anomaly type;
  with one answer agreement is unknown (None);
- the **consensus mask** is the per-pixel majority of the answers' masks: a pixel is anomalous when at least
  half of the annotators painted it, so a tie (2 of 4) counts as anomalous: missing an anomaly costs an
  inspection more than a second look at a false alarm does;
- the pair's latest ``review`` row is its verdict.

The policies (``hf:DIR?policy=...``, ``retrain --labels-policy``):

``latest``     every annotator's answer is a training pair (the default, and what v1 of the reader did);
``consensus``  one training pair per pair with at least k answers: the consensus mask;
``accepted``   one training pair per pair a reviewer accepted (the mask the reviewer accepted) or corrected
               (the corrected mask); rejected and unreviewed pairs are left out.

``min_agreement`` (latest and consensus) leaves out pairs whose mask agreement is below it, and pairs
with one answer, whose agreement is unknown. Gold pairs are always left out. :func:`select` returns
the training items and, per reason, how many pairs it left out.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from typing import Callable, Iterable, Sequence

import numpy as np

POLICIES = ("latest", "consensus", "accepted")
KINDS = ("label", "gold", "review")
VERDICTS = ("accept", "reject", "correct")
NO_ANOMALY = "no anomaly"

# Why a pair was left out (the keys of Selection.left_out; also shown in retrain's report).
GOLD = "gold pair (it scores annotators and never trains)"
FEWER_THAN_K = "fewer than k={k} labels"
ONE_LABEL = "one label, so agreement is unknown"
LOW_AGREEMENT = "agreement below {min_agreement:g}"
NOT_REVIEWED = "not reviewed"
REJECTED = "rejected by a reviewer"
NO_LABEL = "no label row"


@dataclass(frozen=True)
class RowInfo:
    """The columns of one row that policies look at (no images). ``index`` is the row's position in
    whatever table it came from; the callbacks that return masks take it."""

    index: int
    id: str
    content_hash: str
    annotator: str
    kind: str = "label"
    anomaly_type: str = ""
    created_at: str = ""
    identity: str = "name"
    verdict: str = ""
    gold_iou: float | None = None
    source: str = ""

    @property
    def order(self) -> tuple[str, str]:
        return (self.created_at, self.id)


@dataclass
class PairLabels:
    """Everything the dataset says about one pair."""

    content_hash: str
    answers: dict[str, RowInfo] = field(default_factory=dict)  # annotator -> latest label row
    gold: dict[str, RowInfo] = field(default_factory=dict)  # annotator -> latest gold row
    reviews: list[RowInfo] = field(default_factory=list)  # oldest first
    superseded: int = 0  # label and gold rows replaced by the same annotator's later answer

    @property
    def is_gold(self) -> bool:
        return bool(self.gold)

    @property
    def review(self) -> RowInfo | None:
        """The latest review (the verdict that counts), or None."""
        return self.reviews[-1] if self.reviews else None

    @property
    def review_pending(self) -> bool:
        """True when there are answers and no review newer than the newest answer."""
        if not self.answers or self.is_gold:
            return False
        newest = max(r.order for r in self.answers.values())
        return self.review is None or self.review.order < newest

    def answer_rows(self) -> list[RowInfo]:
        """The answers, oldest first."""
        return sorted(self.answers.values(), key=lambda r: r.order)


def group_rows(rows: Iterable[RowInfo]) -> dict[str, PairLabels]:
    """Rows (ids unique) grouped by pair, in order of each pair's first row."""
    pairs: dict[str, PairLabels] = {}
    for r in sorted(rows, key=lambda r: r.order):
        p = pairs.setdefault(r.content_hash, PairLabels(r.content_hash))
        if r.kind == "review":
            p.reviews.append(r)
            continue
        slot = p.gold if r.kind == "gold" else p.answers
        if r.annotator in slot:
            p.superseded += 1
        slot[r.annotator] = r  # rows come oldest first: the last one wins
    return pairs


def latest_per_annotator(ids, content_hashes, annotators, created_at) -> list[int]:
    """The index of each annotator's latest row for each pair, in ``(created_at, id)`` order: the answers
    of :func:`group_rows` (the ``latest`` policy), for rows given as four plain columns (ids unique)."""
    rows = [RowInfo(i, ids[i], content_hashes[i], annotators[i], created_at=created_at[i]) for i in range(len(ids))]
    return sorted((r.index for p in group_rows(rows).values() for r in p.answers.values()), key=lambda i: (created_at[i], ids[i]))


# -- agreement and consensus ------------------------------------------------------------------------


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks of one shape; two empty masks agree (1.0)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"masks of different shapes {a.shape} and {b.shape}")
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else float(np.count_nonzero(a & b) / union)


def consensus_mask(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Per-pixel majority: anomalous where at least half of the masks are (a tie counts as anomalous)."""
    if not masks:
        raise ValueError("the consensus of no mask")
    votes = np.zeros(np.asarray(masks[0]).shape, np.int32)
    for m in masks:
        votes += np.asarray(m, bool)
    return 2 * votes >= len(masks)


def consensus_type(types: Sequence[str], mask_empty: bool) -> str:
    """The consensus's anomaly type: ``no anomaly`` for an empty consensus mask, else the type most
    annotators who saw an anomaly chose (a tie goes to the type named first by the oldest answer)."""
    if mask_empty:
        return NO_ANOMALY
    seen = [t for t in types if t != NO_ANOMALY] or ["other"]
    counts = Counter(seen)
    best = max(counts.values())
    return next(t for t in seen if counts[t] == best)


@dataclass(frozen=True)
class Agreement:
    """How well the answers of one pair agree (None with fewer than two answers)."""

    annotators: tuple[str, ...]
    pairwise: dict[tuple[str, str], float]  # (annotator a, annotator b) -> IoU of their masks
    mask: float | None  # mean pairwise IoU
    type: float | None  # share of annotator pairs that chose the same type

    @property
    def n(self) -> int:
        return len(self.annotators)


def agreement(answers: Sequence[tuple[str, str, np.ndarray]]) -> Agreement:
    """Agreement of ``(annotator, anomaly_type, mask)`` answers."""
    names = tuple(a for a, _, _ in answers)
    pairwise, same = {}, []
    for (a, ta, ma), (b, tb, mb) in combinations(answers, 2):
        pairwise[(a, b)] = mask_iou(ma, mb)
        same.append(ta == tb)
    if not pairwise:
        return Agreement(names, {}, None, None)
    return Agreement(names, pairwise, float(np.mean(list(pairwise.values()))), float(np.mean(same)))


MaskReader = Callable[[Sequence[int]], list[np.ndarray]]


def pair_agreement(pair: PairLabels, masks: MaskReader) -> Agreement:
    rows = pair.answer_rows()
    if len(rows) < 2:
        return Agreement(tuple(r.annotator for r in rows), {}, None, None)
    return agreement([(r.annotator, r.anomaly_type, m) for r, m in zip(rows, masks([r.index for r in rows]))])


# -- the policies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One training pair: images from row ``image_row``; mask from ``mask_rows`` (one row: its mask;
    several: their consensus)."""

    name: str
    content_hash: str
    image_row: int
    mask_rows: tuple[int, ...]


@dataclass
class Selection:
    """What one policy keeps of a label dataset, and why it left the other pairs out."""

    policy: str
    items: list[Item]
    pairs: int  # pairs in the dataset
    kept: int  # pairs that gave at least one item
    left_out: dict[str, int]  # reason -> pairs
    superseded: int  # rows replaced by their annotator's later answer (never read)
    k: int = 1
    min_agreement: float | None = None

    def as_dict(self) -> dict:
        return {"policy": self.policy, "pairs_kept": self.kept, "items": len(self.items), "pairs_in_dataset": self.pairs,
                "left_out": dict(self.left_out), "rows_superseded": self.superseded, "k": self.k,
                "min_agreement": self.min_agreement}

    def describe(self) -> str:
        """One line: 'consensus: kept 12 of 20 pairs (8 left out: 5 fewer than k=3 labels, 3 not reviewed)'."""
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(self.left_out.items(), key=lambda kv: -kv[1]))
        out = f"{self.policy}: kept {self.kept} of {self.pairs} pairs ({len(self.items)} training pairs)"
        return out + (f"; left out {self.pairs - self.kept}: {why}" if self.left_out else "")


def select(rows: Iterable[RowInfo], policy: str = "latest", k: int = 1, min_agreement: float | None = None,
           masks: MaskReader | None = None) -> Selection:
    """The training items a policy takes from ``rows`` (ids unique). ``masks`` is needed when
    ``min_agreement`` is set (agreement compares masks)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown label policy {policy!r}; use one of {', '.join(POLICIES)}")
    if k < 1:
        raise ValueError("k must be at least 1")
    if min_agreement is not None and policy == "accepted":
        raise ValueError("min_agreement does not apply to the accepted policy: the reviewer's verdict decides")
    if min_agreement is not None and masks is None:
        raise ValueError("min_agreement needs the masks")
    pairs = group_rows(rows)
    items: list[tuple[tuple[str, str], Item]] = []
    left: Counter = Counter()
    kept = 0
    for h, p in pairs.items():
        why = _left_out(p, policy, k, min_agreement, masks)
        if why:
            left[why] += 1
            continue
        kept += 1
        if policy == "latest":
            items += [(r.order, Item(r.id, h, r.index, (r.index,))) for r in p.answer_rows()]
        elif policy == "consensus":
            answers = p.answer_rows()
            items.append((answers[-1].order, Item(f"consensus-{h[:16]}", h, answers[0].index, tuple(r.index for r in answers))))
        else:
            r = p.review
            items.append((r.order, Item(r.id, h, r.index, (r.index,))))
    items.sort(key=lambda t: t[0])  # by the row that made the item what it is, oldest first
    return Selection(policy, [it for _, it in items], len(pairs), kept, dict(left),
                     sum(p.superseded for p in pairs.values()), k, min_agreement)


def _left_out(p: PairLabels, policy: str, k: int, min_agreement: float | None, masks) -> str | None:
    if p.is_gold:
        return GOLD
    if policy == "accepted":
        if p.review is None:
            return NOT_REVIEWED
        return REJECTED if p.review.verdict == "reject" else None
    if not p.answers:
        return NO_LABEL  # reviews only (a review of rows since compacted away, or written by hand)
    if policy == "consensus" and len(p.answers) < k:
        return FEWER_THAN_K.format(k=k)
    if min_agreement is not None:
        if len(p.answers) < 2:
            return ONE_LABEL
        if pair_agreement(p, masks).mask < min_agreement:
            return LOW_AGREEMENT.format(min_agreement=min_agreement)
    return None
