"""What the crowd has done, in one place: for ``python -m annotate status``, the Label tab's panel and the
dataset card. No Gradio here.

Counts come from the store's rows through the same functions the training policies use
(``anodfdnet/data/label_policies.py``): pairs labelled (with at least one answer) out of the queue's
pairs, pairs with k answers, the mean agreement over pairs with two or more answers, per annotator the
pairs answered, gold pairs answered and mean IoU with the gold masks, reviews waiting and done, and the
Hub push state. Gold pairs are counted apart: they never count as labelled pairs.
"""
from __future__ import annotations

import html
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


@dataclass
class Summary:
    rows: int
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

    def lines(self) -> list[str]:
        def pct(x):
            return "n/a" if x is None else f"{100 * x:.1f} %"

        out = [f"{self.rows} rows; {self.pairs} pairs labelled"
               + (f" ({self.queue_labelled} / {self.queue_total} of the queue)" if self.queue_total is not None else "")
               + f"; {self.with_k} with k={self.k} labels"]
        out.append(f"agreement: mean mask IoU {pct(self.agreement)}, same anomaly type {pct(self.type_agreement)} "
                   f"(over {self.agreement_pairs} pairs with two or more labels)")
        done = ", ".join(f"{n} {v}ed" if v != "correct" else f"{n} corrected" for v, n in sorted(self.verdicts.items()))
        out.append(f"reviews: {self.pending_reviews} pending" + (f"; {done}" if done else ""))
        if self.gold_pairs:
            out.append(f"gold pairs answered: {self.gold_pairs}")
        for a in self.annotators:
            gold = f", gold IoU {pct(a.gold_iou)} over {a.gold}" if a.gold else ""
            rev = f", {a.reviews} reviews" if a.reviews else ""
            out.append(f"  {a.name} [{a.identity}]: {a.answers} pairs{gold}{rev}")
        if self.hub:
            out.append(f"Hub: {self.hub}")
        return out

    def text(self) -> str:
        return "\n".join(self.lines())

    def markdown(self) -> str:
        """A short Markdown block; every name in it is escaped."""
        lines = self.lines()
        head = [html.escape(line, quote=False) for line in lines if not line.startswith("  ") and not line.startswith("Hub:")]
        table = ""
        if self.annotators:
            rows = ["| annotator | identity | pairs | gold IoU | reviews |", "|---|---|---:|---:|---:|"]
            for a in self.annotators:
                gold = "" if a.gold_iou is None else f"{100 * a.gold_iou:.1f} % ({a.gold})"
                rows.append(f"| {html.escape(a.name, quote=False)} | {a.identity} | {a.answers} | {gold} | {a.reviews} |")
            table = "\n\n" + "\n".join(rows)
        hub = f"\n\n{html.escape(self.hub, quote=False)}." if self.hub else ""
        return "\n".join(f"- {line}" for line in head) + table + hub


def summarize(store: LabelStore, queue=None, hub=None, k: int | None = None) -> Summary:
    """The summary of ``store`` (with the queue's progress and k when given, and the Hub state)."""
    from anodfdnet.data.labels import labels_per_pair

    k = (queue.k if queue is not None else labels_per_pair()) if k is None else k
    snap = store.snapshot()
    pairs = snap.pairs
    people: dict[str, AnnotatorStats] = {}
    gold_ious: dict[str, list[float]] = {}
    labelled = [p for p in pairs.values() if p.answers and not p.is_gold]
    verdicts: Counter = Counter()
    for p in pairs.values():
        for r in p.answers.values():
            people.setdefault(r.annotator, AnnotatorStats(r.annotator, r.identity)).answers += 1
        for r in p.gold.values():
            a = people.setdefault(r.annotator, AnnotatorStats(r.annotator, r.identity))
            a.gold += 1
            if r.gold_iou is not None:
                gold_ious.setdefault(r.annotator, []).append(r.gold_iou)
        for r in p.reviews:
            people.setdefault(r.annotator, AnnotatorStats(r.annotator, r.identity)).reviews += 1
        if p.review is not None and not p.is_gold:
            verdicts[p.review.verdict] += 1
    for name, ious in gold_ious.items():
        people[name].gold_iou = float(np.mean(ious))
    agreements = [snap.agreement(p) for p in labelled if len(p.answers) >= 2]
    mask_ag = [a.mask for a in agreements if a.mask is not None]
    type_ag = [a.type for a in agreements if a.type is not None]
    q_labelled = q_total = None
    if queue is not None and len(queue):
        q_labelled, _, q_total = queue.counts()
    return Summary(
        rows=len(snap.rows), pairs=len(labelled), k=k, with_k=sum(len(p.answers) >= k for p in labelled),
        queue_labelled=q_labelled, queue_total=q_total,
        agreement=float(np.mean(mask_ag)) if mask_ag else None, type_agreement=float(np.mean(type_ag)) if type_ag else None,
        agreement_pairs=len(mask_ag), annotators=sorted(people.values(), key=lambda a: (-a.answers, a.name)),
        pending_reviews=sum(p.review_pending and len(p.answers) >= k for p in labelled), verdicts=dict(verdicts),
        gold_pairs=sum(1 for p in pairs.values() if p.is_gold), hub=hub.status_text() if hub is not None else "",
    )


def compact(store: LabelStore, queue=None, hub=None, **kwargs) -> CompactionReport:
    """Compact the store (``LabelStore.compact``), then refresh the dataset card with the summary."""
    report = store.compact(**kwargs)
    s = summarize(store, queue)  # the card is pushed with the shards: no local Hub state in it
    store.refresh_card(s.markdown())
    if hub is not None:
        hub.notify()
    return report
