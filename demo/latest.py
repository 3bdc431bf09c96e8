"""Only the newest of a page's runs fills the page.

A visitor can start a second run while one is in flight: a model or an alignment chosen with a pair shown runs
that pair again at once, an example clicked, Run clicked again. The runs share a pool of workers, so an older
run that happens to be slower (a larger model, a busy machine) could finish last and replace the newer result:
the page would then show the figures of a model the menu no longer names. Here each page run takes a ticket
for its session when it starts; when it ends, a run whose ticket is no longer its session's newest leaves the
page alone (its outputs skipped, its error not shown), so the page always ends on the visitor's last choice.

Only the page's own events go through this; the ``/predict`` API answers every call, as a client that sends
two calls from one session expects both answers.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import gradio as gr

# Sessions remembered (the newest ticket each): a few ints each, the oldest forgotten first. A forgotten
# session's run counts as the newest (it fills the page, as before this guard).
MAX_SESSIONS = 4096


class LatestRuns:
    """The newest run's ticket per session, thread-safe (Gradio runs events in worker threads)."""

    def __init__(self, max_sessions: int = MAX_SESSIONS):
        self._newest: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_sessions

    def start(self, session: str | None) -> int:
        """A run of ``session`` begins: its ticket, newer than every earlier one of that session."""
        if session is None:
            return 0
        with self._lock:
            ticket = self._newest.pop(session, 0) + 1
            self._newest[session] = ticket
            while len(self._newest) > self._max:
                self._newest.popitem(last=False)
            return ticket

    def is_newest(self, session: str | None, ticket: int) -> bool:
        """True unless a newer run of ``session`` has started since ``ticket`` was taken."""
        if session is None:
            return True
        with self._lock:
            return self._newest.get(session, ticket) == ticket


def newest_only(fn, outputs: int, runs: LatestRuns):
    """A page event for ``fn(history, current, model, threshold, align)``: the same outputs, except that a run
    overtaken by a newer one of its session returns ``outputs`` skips (and swallows its error)."""

    def page_event(history, current, model, threshold, align, request: gr.Request):
        session = getattr(request, "session_hash", None)
        ticket = runs.start(session)
        try:
            result = fn(history, current, model, threshold, align)
        except Exception:
            if runs.is_newest(session, ticket):
                raise
            return tuple(gr.skip() for _ in range(outputs))
        return result if runs.is_newest(session, ticket) else tuple(gr.skip() for _ in range(outputs))

    page_event.__name__ = page_event.__qualname__ = f"{fn.__name__}_newest_only"
    return page_event
