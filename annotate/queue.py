"""The queue of pairs waiting for labels: ``ANODFDNET_QUEUE`` names a data SPEC of pairs to label.

Several people per pair: a pair is served until ``k`` different annotators labelled it
(``ANODFDNET_LABELS_PER_PAIR``, default 1), never to someone who labelled it already, and people
labelling at the same time are spread over different pairs. Counting is by content hash
(``anodfdnet.data.labels.content_hash``) over the rows of the store, so a pair uploaded by hand counts too.

**Holds.** A pair handed out is *held* for its annotator for ``hold_s`` seconds (10 minutes): while
``labels + holds >= k`` nobody else gets it, which is what keeps every pair at exactly k labels. A
holder (a browser session; a signed-in account across its sessions) has at most one hold: asking for
another pair, skipping or saving gives the previous one back. When no pair is free, a hold older than
``take_over_s`` (1 minute) on a pair the asker may label is taken over, so a client that grabs many
pairs (with many sessions) delays others by at most that long; the annotator whose hold was taken may
still save, and the pair then has k + 1 labels. With ``ANODFDNET_REQUIRE_LOGIN=1`` only signed-in
accounts get pairs, one hold each.

Among the free pairs the queue serves the one with the fewest holds, then the most labels (so pairs
reach k and their consensus sooner), then the first in queue order, or, when asked to (``uncertainty``), the
one the model is least sure about (``uncertainty.py``).

**Gold pairs.** ``ANODFDNET_GOLD=SPEC`` names pairs whose masks are known (e.g. a validation split,
``deeppcb:LIST@val``). They are mixed into each annotator's pairs at the rate ``ANODFDNET_GOLD_RATE``
(default 0.1): each request draws, with that probability and from a random source the visitor cannot
predict, a gold pair (one this annotator has not answered, chosen at random) instead of a queue pair,
so a gold pair may come at any position, first or not. A gold pair is held like any other, and while gold
pairs are configured every pair is shown by the same kind of name, the first 8 hex digits of its
content hash (:attr:`QueueItem.display_name`), so neither name, order nor holds give one away. A save of
a gold pair is stored as ``kind="gold"`` with the IoU of its mask with the gold mask, and never trains.
What a visitor sees of the scores and counts is ``summary.py``'s public view.

A pair's hash is computed from its pixels the first time it is needed and kept; the first ``progress()``
reads every pair once (a few seconds for a thousand 640x640 pairs), later calls are cheap.
"""
from __future__ import annotations

import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anodfdnet.data import Pair, Source, parse_spec
from anodfdnet.data.spec import spec_display_name
from anodfdnet.data.labels import content_hash, labels_per_pair
from anodfdnet.errors import UserError

from .store import LabelStore

log = logging.getLogger(__name__)

ENV_QUEUE = "ANODFDNET_QUEUE"
ENV_GOLD = "ANODFDNET_GOLD"
ENV_GOLD_RATE = "ANODFDNET_GOLD_RATE"


@dataclass
class QueueItem:
    index: int
    pair: Pair
    content_hash: str
    source: str  # "SPEC#NAME", recorded in the label's ``source`` column
    gold: bool = False
    opaque: bool = False  # gold pairs are configured: every pair is named by its hash

    @property
    def display_name(self) -> str:
        """The name the page shows: the pair's own name, or, while gold pairs are configured, the first 8 hex
        digits of its content hash for every pair, gold or not (a file name would give a gold pair away)."""
        return self.content_hash[:8] if self.gold or self.opaque else self.pair.name


class _Hashed:
    """A source with each pair's content hash computed once."""

    def __init__(self, source: Source):
        self.source = source
        self._hashes: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.source)

    def hash(self, i: int) -> str:
        h = self._hashes.get(i)
        if h is None:
            pair = self.source[i]
            h = self._hashes[i] = content_hash(pair.history, pair.current)
        return h


def _manifest_path(spec: str) -> Path | None:
    """The file of a ``manifest:FILE`` queue (re-read when it changes), else None."""
    scheme, _, arg = spec.partition(":")
    if scheme != "manifest" or not arg.strip() or "@" in arg:
        return None
    return Path(arg.strip()).expanduser()


def _stamp(path: Path | None):
    try:
        st = path.stat() if path is not None else None
    except OSError:
        return None
    return None if st is None else (st.st_mtime_ns, st.st_size, st.st_ino)


def _gold_rate() -> float:
    raw = os.environ.get(ENV_GOLD_RATE, "").strip() or "0.1"
    try:
        rate = float(raw)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        raise UserError(f"{ENV_GOLD_RATE} must be a number from 0 to 1, got {raw[:20]!r}.")
    return rate


class LabelQueue:
    def __init__(self, store: LabelStore, spec: str | None = None, hold_s: float = 600.0, *, k: int | None = None,
                 gold: str | None = None, gold_rate: float | None = None, take_over_s: float = 60.0,
                 rng: random.Random | None = None):
        self.store = store
        self.spec = (spec if spec is not None else os.environ.get(ENV_QUEUE, "")).strip()
        self.gold_spec = (gold if gold is not None else os.environ.get(ENV_GOLD, "")).strip()
        self.hold_s = hold_s
        self.take_over_s = take_over_s
        self.k = labels_per_pair() if k is None else int(k)
        if self.k < 1:
            raise UserError("a pair needs at least one label (k >= 1).")
        self.gold_rate = _gold_rate() if gold_rate is None else float(gold_rate)
        # A bad SPEC is a UserError at start-up, not at "Next". A queue manifest (manifest:FILE.csv) may not exist
        # yet: inspect --to-queue creates it, and the queue re-reads it whenever it changes (_refresh).
        self._manifest = _manifest_path(self.spec)
        self._stamp = _stamp(self._manifest)
        self._refresh_lock = threading.Lock()
        waiting = self._manifest is not None and self._stamp is None
        self.source: Source | None = parse_spec(self.spec) if self.spec and not waiting else None
        self.gold_source: Source | None = parse_spec(self.gold_spec) if self.gold_spec else None
        self._pairs = _Hashed(self.source) if self.source is not None else None
        self._gold = _Hashed(self.gold_source) if self.gold_source is not None else None
        self._holds: dict[str, tuple[str, float]] = {}  # holder -> (content hash, monotonic time handed out)
        self._lock = threading.Lock()
        self._rng = rng or random.SystemRandom()  # when gold comes, and which: not predictable by a visitor

    @property
    def enabled(self) -> bool:
        self._refresh()
        return self.source is not None or self.gold_source is not None or self._manifest is not None

    def __len__(self) -> int:
        self._refresh()
        return len(self.source) if self.source is not None else 0

    def _refresh(self) -> None:
        """Re-read a queue manifest that changed since it was read (``inspect --to-queue`` and
        ``python -m annotate queue add`` rewrite it atomically); a manifest that cannot be read keeps the old pairs."""
        if self._manifest is None:
            return
        with self._refresh_lock:
            stamp = _stamp(self._manifest)
            if stamp == self._stamp or stamp is None:
                return
            self._stamp = stamp
            try:
                source = parse_spec(self.spec)
            except UserError as e:
                log.warning("the queue manifest %s could not be read again, keeping its previous pairs: %s", self._manifest, e)
                return
            old = self._pairs
            pairs = _Hashed(source)
            if old is not None:  # hashes of pairs whose files did not change are kept
                known = {(n, f): old._hashes[i] for i, (n, f) in enumerate(zip(old.source.names, getattr(old.source, "files", [])))
                         if i in old._hashes}
                for i, key in enumerate(zip(source.names, getattr(source, "files", []))):
                    if key in known:
                        pairs._hashes[i] = known[key]
            with self._lock:
                self.source, self._pairs = source, pairs

    @property
    def display_name(self) -> str:
        """The queue's set name for the page (``spec_display_name``): never a server path, and never the
        gold SPEC's name."""
        return spec_display_name(self.spec) if self.spec else "pairs to label"

    # -- gold ---------------------------------------------------------------------------------------
    def gold_hashes(self) -> dict[str, int]:
        """content hash -> index of every gold pair."""
        if self._gold is None:
            return {}
        return {self._gold.hash(i): i for i in range(len(self._gold))}

    def gold_mask(self, content_hash_: str) -> np.ndarray | None:
        """The known mask of a gold pair, or None when the hash is not a gold pair's."""
        i = self.gold_hashes().get(content_hash_)
        if i is None:
            return None
        mask = self.gold_source[i].mask
        if mask is None:
            raise UserError(f"gold pair '{self.gold_source.names[i]}' of {ENV_GOLD} has no mask; gold pairs need known masks.")
        return mask

    # -- serving ------------------------------------------------------------------------------------
    def next_for(self, annotator: str | None, holder: str, exclude=(), uncertainty=None) -> QueueItem | None:
        """The next pair for ``annotator`` (None if unknown), held for ``holder``; None when none is free.

        exclude: content hashes not to serve (e.g. the ones this annotator skipped). uncertainty: an
        ``uncertainty.UncertaintyScores``: among equally held and labelled free pairs, the one its model is least
        sure about first (pairs it has not scored yet after, in queue order) instead of queue order."""
        exclude = set(exclude)
        self._refresh()
        with self._lock:
            self._holds.pop(holder, None)  # one hold per holder
            pairs = self.store.snapshot().pairs
            now = time.monotonic()
            gold = self._next_gold(annotator, pairs, exclude)
            if gold is not None:
                self._holds[holder] = (gold.content_hash, now)
                return gold
            if self._pairs is None:
                return None
            held: dict[str, list[tuple[float, str]]] = {}
            for who, (h, t) in list(self._holds.items()):
                if now - t >= self.hold_s:
                    del self._holds[who]
                else:
                    held.setdefault(h, []).append((t, who))
            gold_hashes = set(self.gold_hashes())
            best, take_over = None, None
            for i in range(len(self._pairs)):
                h = self._pairs.hash(i)
                if h in exclude or h in gold_hashes:
                    continue
                p = pairs.get(h)
                answers = p.answers if p is not None and not p.is_gold else {}
                if (p is not None and p.is_gold) or len(answers) >= self.k or (annotator and annotator in answers):
                    continue
                holds = held.get(h, [])
                if len(answers) + len(holds) < self.k:
                    key = (len(holds), -len(answers), uncertainty.rank(h) if uncertainty is not None else (), i)
                    if best is None or key < best[0]:
                        best = (key, i, h)
                else:
                    t, who = min(holds)
                    if now - t >= self.take_over_s and (take_over is None or t < take_over[0]):
                        take_over = (t, i, h, who)
            if best is None and take_over is not None:
                del self._holds[take_over[3]]
                best = (None, take_over[1], take_over[2])
            if best is None:
                return None
            _, i, h = best
            self._holds[holder] = (h, now)
        return QueueItem(i, self.source[i], h, f"{self.spec}#{self.source.names[i]}", opaque=self._gold is not None)

    def item_again(self, index: int, gold: bool, content_hash_: str) -> QueueItem | None:
        """The pair served before as ``(index, gold)`` with ``content_hash_`` (e.g. for "Previous pair"), held by
        nobody; None when that index no longer holds that pair (the folder changed)."""
        hashed, source, spec = (self._gold, self.gold_source, self.gold_spec) if gold else (self._pairs, self.source, self.spec)
        if hashed is None or not isinstance(index, int) or not 0 <= index < len(hashed) or hashed.hash(index) != content_hash_:
            return None
        return QueueItem(index, source[index], content_hash_, f"{spec}#{source.names[index]}", gold=bool(gold),
                         opaque=self._gold is not None)

    def pair_at(self, i: int) -> tuple[str, np.ndarray, np.ndarray]:
        """(content hash, history, current) of queue pair i (for scoring it)."""
        pair = self.source[i]
        return self._pairs.hash(i), pair.history, pair.current

    def _next_gold(self, annotator: str | None, pairs, exclude) -> QueueItem | None:
        """A gold pair this annotator has not answered, drawn at the gold rate (always, with no queue); None
        otherwise. A visitor with no name yet is drawn for too (the name given at Save decides the row)."""
        if self._gold is None or self.gold_rate <= 0:
            return None
        if self._pairs is not None and self._rng.random() >= self.gold_rate:
            return None
        done = {h for h, p in pairs.items() if annotator in p.gold} if annotator else set()
        free = [i for i in range(len(self._gold)) if self._gold.hash(i) not in done and self._gold.hash(i) not in exclude]
        if not free:
            return None
        i = self._rng.choice(free)
        return QueueItem(i, self.gold_source[i], self._gold.hash(i), f"{self.gold_spec}#{self.gold_source.names[i]}",
                         gold=True, opaque=True)

    def release(self, holder: str) -> None:
        """Give the holder's pair back (they skipped it, saved it, or left)."""
        with self._lock:
            self._holds.pop(holder, None)

    def held_elsewhere(self, holder: str | None = None) -> int:
        """Pairs handed out to other holders in the last ``hold_s`` seconds (someone may be painting them)."""
        now = time.monotonic()
        with self._lock:
            return len({h for who, (h, t) in self._holds.items() if who != holder and now - t < self.hold_s})

    # -- progress -----------------------------------------------------------------------------------
    def counts(self) -> tuple[int, int, int]:
        """(queue pairs with at least one label, queue pairs with k labels, pairs in the queue)."""
        self._refresh()
        if self._pairs is None:
            return 0, 0, 0
        pairs = self.store.snapshot().pairs
        n = [len(pairs[h].answers) if h in pairs else 0 for h in (self._pairs.hash(i) for i in range(len(self._pairs)))]
        return sum(x > 0 for x in n), sum(x >= self.k for x in n), len(n)

    def progress(self) -> tuple[int, int]:
        """(pairs of the queue that have all k labels, pairs in the queue)."""
        _, done, total = self.counts()
        return done, total
