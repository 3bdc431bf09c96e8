"""Only the newest of a page's runs fills the page.

A visitor can start a second run while one is in flight: a model or an alignment chosen with a pair shown runs
that pair again at once, an example clicked, Run clicked again. The runs share a pool of workers, so an older
run that happens to be slower (a larger model, a busy machine) could finish last and replace the newer result:
the page would then show the figures of a model the menu no longer names. In the Label tab the stakes are a
label: "Start from the model" on one pair, then Next pair while the model runs, and the model's answer (that
pair's current image and mask) would land beside the next pair's history, and Save would store a pair that never
existed. Here each run of a group of page events (the Detect tab's runs; the Label tab's events that change the
pair or the mask on screen, a history image the person uploads or clears among them) takes a ticket for its
session when it starts; when it ends, a run whose ticket is no longer its session's newest leaves the page alone
(its outputs skipped, its error not shown), so the page ends on the visitor's last action, and every event's
outputs come from the screen its inputs were read from. (The Label tab's paint editor sends an upload event by
itself after every value the server gives it, so its uploads take no ticket: annotate/tab.py.)

Gradio itself drops a second trigger of one event while that event's run is pending (``trigger_mode="once"``, its
default): a second model chosen during the first one's re-run was ignored, leaving the menu naming one model and
the page showing the other's figures. The Detect tab's runs therefore use ``"always_last"`` (the later trigger
runs when the pending one ends); this guard handles runs of different events in flight together.

Only the page's own events go through this; the ``/predict`` and ``/save_label`` APIs answer every call, as a
client that sends two calls from one session expects both answers. What an overtaken run did on the server stays
done (a Next pair's queue hold, a served pair in the session's history for Previous pair).
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import threading
from collections import OrderedDict

import gradio as gr

# Sessions remembered (the newest ticket each): a few ints each, the oldest forgotten first. A forgotten
# session's run counts as the newest (it fills the page, as before this guard).
MAX_SESSIONS = 4096
# A session id is whatever a request sends (Gradio takes a 1 MB one): longer ids are kept as their SHA-256, so the
# table holds at most MAX_SESSIONS x 64 characters of keys.
MAX_KEY = 64


def _key(session: str) -> str:
    return session if len(session) <= MAX_KEY else hashlib.sha256(session.encode("utf-8", "surrogatepass")).hexdigest()


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
        session = _key(session)
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
            return self._newest.get(_key(session), ticket) == ticket


def newest_only(fn, outputs: int, runs: LatestRuns):
    """The page event for ``fn``: its outputs, except that a run overtaken by a newer one of its session returns
    ``outputs`` skips (and swallows its error). The event keeps ``fn``'s name and parameters, plus ``request``
    (``gr.Request``, which Gradio injects) when ``fn`` has none; Gradio's other injected arguments pass through."""
    sig = inspect.signature(fn)
    adds_request = "request" not in sig.parameters
    if adds_request:
        request_param = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                          annotation=gr.Request)
        sig = sig.replace(parameters=[*sig.parameters.values(), request_param])
    at = list(sig.parameters).index("request")

    @functools.wraps(fn)
    def page_event(*args):
        request = args[at] if len(args) > at else None
        session = getattr(request, "session_hash", None)
        ticket = runs.start(session)
        try:
            result = fn(*(args[:at] + args[at + 1:] if adds_request else args))
        except Exception:
            if runs.is_newest(session, ticket):
                raise
            return tuple(gr.skip() for _ in range(outputs))
        return result if runs.is_newest(session, ticket) else tuple(gr.skip() for _ in range(outputs))

    page_event.__signature__ = sig  # what Gradio reads (inspect.signature stops at it)
    page_event.__annotations__ = {**getattr(fn, "__annotations__", {}), "request": gr.Request}
    return page_event
