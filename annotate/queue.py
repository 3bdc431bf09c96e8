"""The queue of pairs waiting to be labelled: ``ANODFDNET_QUEUE`` names a data SPEC of unlabelled pairs.

``next_unlabelled()`` serves a pair whose content hash (``anodfdnet.data.labels.content_hash``) is not in
the label store yet, and that was not handed to another annotator in the last ``hold_s`` seconds, so
people labelling at the same time get different pairs. ``progress()`` is (labelled, total) over the
queue. A pair's hash is computed from its pixels the first time it is needed and kept; ``progress()``
reads every pair once (a few seconds for a thousand 640x640 pairs), later calls are cheap.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from anodfdnet.data import Pair, Source, parse_spec
from anodfdnet.data.labels import content_hash

from .store import LabelStore

ENV_QUEUE = "ANODFDNET_QUEUE"


@dataclass
class QueueItem:
    index: int
    pair: Pair
    content_hash: str
    source: str  # "SPEC#NAME", recorded in the label's ``source`` column


class LabelQueue:
    def __init__(self, store: LabelStore, spec: str | None = None, hold_s: float = 600.0):
        self.store = store
        self.spec = (spec if spec is not None else os.environ.get(ENV_QUEUE, "")).strip()
        self.hold_s = hold_s
        self.source: Source | None = None
        if self.spec:
            self.source = parse_spec(self.spec)  # a bad SPEC is a UserError at start-up, not at "Next"
        self._hashes: dict[int, str] = {}
        self._held: dict[str, float] = {}  # content hash -> monotonic time it was handed out
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.source is not None

    def __len__(self) -> int:
        return len(self.source) if self.source is not None else 0

    def _hash(self, i: int, pair: Pair | None = None) -> tuple[str, Pair | None]:
        h = self._hashes.get(i)
        if h is None:
            pair = pair or self.source[i]
            h = content_hash(pair.history, pair.current)
            self._hashes[i] = h
        return h, pair

    def next_unlabelled(self, exclude=()) -> QueueItem | None:
        """The first pair, in queue order, not labelled, not held for someone else, not in ``exclude``
        (content hashes, e.g. the ones this annotator skipped). None when there is none left."""
        if self.source is None:
            return None
        labelled = self.store.labelled_hashes()
        exclude = set(exclude)
        now = time.monotonic()
        for i in range(len(self.source)):
            h, pair = self._hash(i)
            if h in labelled or h in exclude:
                continue
            with self._lock:
                held = self._held.get(h)
                if held is not None and now - held < self.hold_s:
                    continue
                self._held[h] = now
            pair = pair or self.source[i]
            return QueueItem(i, pair, h, f"{self.spec}#{self.source.names[i]}")
        return None

    def held_elsewhere(self, labelled: set[str] | None = None) -> int:
        """Unlabelled pairs handed out in the last ``hold_s`` seconds (someone may be painting them)."""
        labelled = self.store.labelled_hashes() if labelled is None else labelled
        now = time.monotonic()
        with self._lock:
            return sum(1 for h, t in self._held.items() if now - t < self.hold_s and h not in labelled)

    def release(self, content_hash: str) -> None:
        """Give a held pair back (the annotator skipped it or left)."""
        with self._lock:
            self._held.pop(content_hash, None)

    def progress(self) -> tuple[int, int]:
        """(pairs of the queue that are labelled, pairs in the queue)."""
        if self.source is None:
            return 0, 0
        labelled = self.store.labelled_hashes()
        return sum(self._hash(i)[0] in labelled for i in range(len(self.source))), len(self.source)
