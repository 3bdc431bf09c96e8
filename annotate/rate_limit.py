"""How many labels one identity may save per minute (``ANODFDNET_SAVES_PER_MINUTE``). No Gradio here.

A careful annotator saves a few pairs a minute; a script saves many a second, e.g. to probe what a score
reveals about a gold mask, or to fill a queue with noise. :class:`SaveLimit` counts the saves of each
key (the Label tab uses the annotator's name and the browser session, so that neither a new session
nor a new typed name lifts it alone) over the last 60 seconds and refuses the next one with a sentence
that says when to try again. A slot is taken before the save is written and given back when the save
is refused for another reason, so concurrent requests of one identity cannot overshoot the limit.

``ANODFDNET_SAVES_PER_MINUTE`` (default :data:`DEFAULT_PER_MINUTE`; ``0`` turns the limit off).
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections import deque

from anodfdnet.errors import UserError

ENV_SAVES_PER_MINUTE = "ANODFDNET_SAVES_PER_MINUTE"
DEFAULT_PER_MINUTE = 20
WINDOW_S = 60.0
MAX_KEYS = 100_000  # keys remembered; the quietest are forgotten past this


def saves_per_minute() -> int:
    """The limit from ``ANODFDNET_SAVES_PER_MINUTE`` (0: off); a bad value is a UserError."""
    raw = os.environ.get(ENV_SAVES_PER_MINUTE, "").strip() or str(DEFAULT_PER_MINUTE)
    try:
        n = int(raw)
    except ValueError:
        n = -1
    if not 0 <= n <= 10_000:
        raise UserError(f"{ENV_SAVES_PER_MINUTE} must be a whole number from 0 (no limit) to 10000, got {raw[:20]!r}.")
    return n


class SaveLimit:
    """At most ``per_minute`` saves per key in any 60 seconds (``per_minute=None``: from the environment)."""

    def __init__(self, per_minute: int | None = None, window_s: float = WINDOW_S, clock=time.monotonic):
        self.per_minute = saves_per_minute() if per_minute is None else int(per_minute)
        self.window_s = window_s
        self._clock = clock
        self._times: dict[str, deque] = {}
        self._lock = threading.Lock()

    def take(self, *keys: str) -> tuple[str, ...]:
        """Take one save slot for every key (all or none); a UserError saying when to retry when a key has
        used its saves in the last minute. Returns the keys to :meth:`give_back` if the save fails."""
        if self.per_minute <= 0:
            return ()
        keys = tuple(dict.fromkeys(k for k in keys if k))
        now = self._clock()
        with self._lock:
            wait = 0.0
            for k in keys:
                q = self._times.get(k)
                while q and now - q[0] >= self.window_s:
                    q.popleft()
                if q is not None and len(q) >= self.per_minute:
                    wait = max(wait, self.window_s - (now - q[0]))
            if wait > 0:
                raise UserError(f"too many saves: at most {self.per_minute} a minute ({ENV_SAVES_PER_MINUTE}); "
                                f"save again in {math.ceil(wait)} s.")
            for k in keys:
                self._times.setdefault(k, deque()).append(now)
            if len(self._times) > MAX_KEYS:
                for k in [k for k, q in self._times.items() if not q or now - q[-1] >= self.window_s]:
                    del self._times[k]
        return keys

    def give_back(self, keys: tuple[str, ...]) -> None:
        """Return the slots of a save that did not happen."""
        with self._lock:
            for k in keys:
                q = self._times.get(k)
                if q:
                    q.pop()
