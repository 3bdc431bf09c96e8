"""What the crowd has done, in one place: for ``python -m annotate status``, the Label tab's panel and the
dataset card. No Gradio here.

Counts come from the store's rows through the same functions the training policies use
(``anodfdnet/data/label_policies.py``): pairs labelled (with at least one answer) out of the queue's
pairs, pairs with k answers, the mean agreement over pairs with two or more answers, per annotator the
pairs answered, gold pairs answered and mean IoU with the gold masks, reviews waiting and done, and the
Hub push state. Gold pairs are counted apart: they never count as labelled pairs. Rows are counted as
*labels* (annotators' answers, gold answers among them) and *reviews* (reviewers' verdicts), never added
up; reviews are mentioned only where reviewers are configured (``ANODFDNET_REVIEWERS``) or reviews exist.

**Two views.** Gold answers are secret to annotators: a score that moves with each save would let a
script reconstruct a gold mask (save masks covering parts of the image, read back the IoU) and would
single out which pairs are gold. So the *full* view (:meth:`Summary.text`, ``python -m annotate status``,
for the owner; reviewers see each annotator's gold IoU in the Review tab) has the gold pairs answered and
every annotator's mean gold IoU, and the *public* view (:meth:`Summary.markdown`, the Label tab's
"Labelling so far" and the dataset card, which may be public on the Hub) has neither: an annotator's
pairs there count their gold answers like any other, and no annotator sees a gold score, not even their
own. :class:`PublicFigures` serves what every visitor sees (the queue's progress and the public view);
while gold pairs are configured it recomputes them at most every :data:`PUBLIC_REFRESH_S` seconds, so the
effect of one save (a queue pair moves the progress, a gold answer does not) cannot be read off at once.
"""
from __future__ import annotations

import html
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .store import CompactionReport, LabelStore


@dataclass
class AnnotatorStats:
    name: str
    identity: str
    answers: int = 0  # pairs answered (latest answer per pair)
    gold: int = 0  # gold pairs answered
    gold_iou: float | None = None  # mean IoU of their latest gold answers with the gold masks
    reviews: int = 0


def plural(n: int, word: str) -> str:
    """'1 label', '2 labels'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def row_counts(store: LabelStore) -> tuple[int, int]:
    """(label rows, review rows) of the store: answers (gold answers among them) and reviewers' verdicts."""
    rows = store.snapshot().rows
    reviews = sum(r.kind == "review" for r in rows)
    return len(rows) - reviews, reviews


@dataclass
class Summary:
    rows: int  # label rows (answers, gold answers among them); reviews are counted apart
    pairs: int  # pairs with at least one answer (gold pairs aside)
    k: int
    with_k: int  # pairs with at least k answers
    queue_labelled: int | None  # queue pairs with at least one answer (None: no queue)
    queue_total: int | None
    agreement: float | None  # mean over pairs with >= 2 answers of the mean pairwise mask IoU
    type_agreement: float | None
    agreement_pairs: int
    annotators: list[AnnotatorStats]
    pending_reviews: int  # pairs with k answers and no review since their newest answer
    verdicts: dict[str, int] = field(default_factory=dict)  # latest verdict per pair -> pairs
    gold_pairs: int = 0
    hub: str = ""
    quarantined: list[str] = field(default_factory=list)  # "quarantine/<file>: why" of shards moved aside
    review_rows: int = 0
    reviewers: bool = False  # reviewers are configured: the reviews line is shown even with none yet

    @property
    def shows_reviews(self) -> bool:
        return self.reviewers or self.review_rows > 0

    def lines(self) -> list[str]:
        def pct(x):
            return "n/a" if x is None else f"{100 * x:.1f} %"

        out = [plural(self.rows, "label row") + (f", {plural(self.review_rows, 'review row')}" if self.shows_reviews else "")
               + f"; {self.pairs} pairs labelled"
               + (f" ({self.queue_labelled} / {self.queue_total} of the queue)" if self.queue_total is not None else "")
               + f"; {self.with_k} with k={self.k} labels"]
        out.append(f"agreement: mean mask IoU {pct(self.agreement)}, same anomaly type {pct(self.type_agreement)} "
                   f"(over {self.agreement_pairs} pairs with two or more labels)")
        done = ", ".join(f"{n} {v}ed" if v != "correct" else f"{n} corrected" for v, n in sorted(self.verdicts.items()))
        if self.shows_reviews:
            out.append(f"reviews: {self.pending_reviews} pending" + (f"; {done}" if done else ""))
        if self.gold_pairs:
            out.append(f"gold pairs answered: {self.gold_pairs}")
        for a in self.annotators:
            gold = f", gold IoU {pct(a.gold_iou)} over {a.gold}" if a.gold else ""
            rev = f", {a.reviews} reviews" if a.reviews else ""
            out.append(f"  {a.name} [{a.identity}]: {a.answers} pairs{gold}{rev}")
        if self.hub:
            out.append(f"Hub: {self.hub}")
        for q in self.quarantined:
            out.append(f"unreadable shard moved aside, not read: {q}")
        return out

    def text(self) -> str:
        return "\n".join(self.lines())

    def markdown(self) -> str:
        """The public view as a short Markdown block (no gold figures; see the module docstring); every
        name in it is escaped."""
        head = self.lines()[:3 if self.shows_reviews else 2]  # counts, agreement, reviews
        table = ""
        if self.annotators:
            reviews = self.shows_reviews
            rows = ["| annotator | identity | pairs |" + (" reviews |" if reviews else ""),
                    "|---|---|---:|" + ("---:|" if reviews else "")]
            for a in self.annotators:
                rows.append(f"| {html.escape(a.name, quote=False)} | {a.identity} | {a.answers + a.gold} |"
                            + (f" {a.reviews} |" if reviews else ""))
            table = "\n\n" + "\n".join(rows)
        hub = f"\n\n{html.escape(self.hub, quote=False)}." if self.hub else ""
        return "\n".join(f"- {html.escape(line, quote=False)}" for line in head) + table + hub


def gold_scores(pairs) -> dict[str, tuple[float | None, int]]:
    """annotator -> (mean IoU of their latest answer to each gold pair with its gold mask, gold pairs answered),
    from a snapshot's ``pairs``. For the owner and reviewers only (see the module docstring)."""
    ious: dict[str, list[float]] = {}
    counts: Counter = Counter()
    for p in pairs.values():
        for r in p.gold.values():
            counts[r.annotator] += 1
            if r.gold_iou is not None:
                ious.setdefault(r.annotator, []).append(r.gold_iou)
    return {name: (float(np.mean(ious[name])) if name in ious else None, n) for name, n in counts.items()}


def summarize(store: LabelStore, queue=None, hub=None, k: int | None = None, reviewers: bool | None = None) -> Summary:
    """The summary of ``store`` (with the queue's progress and k when given, and the Hub state). reviewers:
    whether reviewers are configured (default: ``ANODFDNET_REVIEWERS`` names some)."""
    from anodfdnet.data.labels import labels_per_pair

    from .identity import reviewers as configured_reviewers

    k = (queue.k if queue is not None else labels_per_pair()) if k is None else k
    snap = store.snapshot()
    pairs = snap.pairs
    people: dict[str, AnnotatorStats] = {}
    labelled = [p for p in pairs.values() if p.answers and not p.is_gold]
    verdicts: Counter = Counter()
    for p in pairs.values():
        for r in p.answers.values():
            people.setdefault(r.annotator, AnnotatorStats(r.annotator, r.identity)).answers += 1
        for r in p.gold.values():
            people.setdefault(r.annotator, AnnotatorStats(r.annotator, r.identity))
        for r in p.reviews:
            people.setdefault(r.annotator, AnnotatorStats(r.annotator, r.identity)).reviews += 1
        if p.review is not None and not p.is_gold:
            verdicts[p.review.verdict] += 1
    for name, (iou, n) in gold_scores(pairs).items():
        people[name].gold, people[name].gold_iou = n, iou
    agreements = [snap.agreement(p) for p in labelled if len(p.answers) >= 2]
    mask_ag = [a.mask for a in agreements if a.mask is not None]
    type_ag = [a.type for a in agreements if a.type is not None]
    q_labelled = q_total = None
    if queue is not None and len(queue):
        q_labelled, _, q_total = queue.counts()
    review_rows = sum(r.kind == "review" for r in snap.rows)
    return Summary(
        rows=len(snap.rows) - review_rows, review_rows=review_rows,
        reviewers=bool(configured_reviewers()) if reviewers is None else reviewers, pairs=len(labelled), k=k, with_k=sum(len(p.answers) >= k for p in labelled),
        queue_labelled=q_labelled, queue_total=q_total,
        agreement=float(np.mean(mask_ag)) if mask_ag else None, type_agreement=float(np.mean(type_ag)) if type_ag else None,
        agreement_pairs=len(mask_ag), annotators=sorted(people.values(), key=lambda a: (-a.answers, a.name)),
        pending_reviews=sum(p.review_pending and len(p.answers) >= k for p in labelled), verdicts=dict(verdicts),
        gold_pairs=sum(1 for p in pairs.values() if p.is_gold), hub=hub.status_text() if hub is not None else "",
        quarantined=[f"quarantine/{q.name}: {q.reason}" for q in store.quarantined()],
    )


PUBLIC_REFRESH_S = 300.0


class PublicFigures:
    """What every visitor sees: ``(labelled, with k, total)`` of the queue, the dataset's label and review
    counts, and the public summary; while the queue mixes in gold pairs, recomputed at most every ``refresh_s`` seconds
    (default :data:`PUBLIC_REFRESH_S`; live without gold)."""

    def __init__(self, store: LabelStore, queue=None, hub=None, refresh_s: float | None = None, clock=time.monotonic):
        self.store, self.queue, self.hub, self._clock = store, queue, hub, clock
        gold = queue is not None and getattr(queue, "gold_source", None) is not None
        self.refresh_s = (PUBLIC_REFRESH_S if gold else 0.0) if refresh_s is None else refresh_s
        self._lock = threading.Lock()
        self._cached: dict[str, tuple[float, object]] = {}

    def _get(self, what: str, compute):
        now = self._clock()
        with self._lock:
            hit = self._cached.get(what)
        if hit is not None and now - hit[0] < self.refresh_s:
            return hit[1]
        value = compute()
        with self._lock:
            self._cached[what] = (now, value)
        return value

    def progress(self) -> tuple[int, int, int, int, int]:
        """(queue pairs with a label, queue pairs with k labels, queue pairs, label rows, review rows)."""
        def compute():
            counts = self.queue.counts() if self.queue is not None else (0, 0, 0)
            return (*counts, *row_counts(self.store))
        return self._get("progress", compute)

    def summary_markdown(self) -> str:
        return self._get("summary", lambda: summarize(self.store, self.queue, self.hub).markdown())


def compact(store: LabelStore, queue=None, hub=None, **kwargs) -> CompactionReport:
    """Compact the store (``LabelStore.compact``), then refresh the dataset card with the summary."""
    report = store.compact(**kwargs)
    s = summarize(store, queue)  # the card is pushed with the shards: no local Hub state in it
    store.refresh_card(s.markdown())
    if hub is not None:
        hub.notify()
    return report
