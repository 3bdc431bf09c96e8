"""What each browser session was served and saved, for the Label tab's **Previous pair**: the queue pairs a
session was given, in order, and the row it saved for each, its own earlier answer. No Gradio here.

Kept on the server, keyed by the session Gradio gives each page, so a client cannot go "back" to a pair its
session was never served, nor see another session's pairs or answers. (A typed name is not verified, so
"the rows saved under this name" would show anyone who types a name the answers given under it, on gold
pairs too; the rows a session saved are known only to the server.) In memory and bounded: the most recent
:data:`MAX_SESSIONS` sessions, the last :data:`MAX_PER_SESSION` pairs of each. After a restart, Previous
pair has nothing to go back to; saving a pair again still replaces the earlier answer for training.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

MAX_SESSIONS = 4096
MAX_PER_SESSION = 100

__all__ = ["MAX_PER_SESSION", "MAX_SESSIONS", "Served", "SessionLog"]


@dataclass(frozen=True)
class Served:
    content_hash: str
    index: int  # in the queue's source (or the gold source)
    gold: bool


@dataclass
class _Session:
    served: list[Served] = field(default_factory=list)  # oldest first, each pair once (at its last serving)
    rows: OrderedDict = field(default_factory=OrderedDict)  # content hash -> row id of the session's latest save


class SessionLog:
    def __init__(self, max_sessions: int = MAX_SESSIONS, per_session: int = MAX_PER_SESSION):
        self.max_sessions, self.per_session = max_sessions, per_session
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, session: str) -> _Session:
        """The session's record, made the most recent (caller holds the lock)."""
        s = self._sessions.pop(session, None) or _Session()
        self._sessions[session] = s
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        return s

    def served(self, session: str, content_hash: str, index: int, gold: bool) -> None:
        """The session was given this queue pair (now on its screen)."""
        if not session:
            return
        with self._lock:
            s = self._get(session)
            s.served = [e for e in s.served if e.content_hash != content_hash][-(self.per_session - 1):]
            s.served.append(Served(content_hash, int(index), bool(gold)))

    def saved(self, session: str, content_hash: str, row_id: str) -> None:
        if not session:
            return
        with self._lock:
            rows = self._get(session).rows
            rows.pop(content_hash, None)
            rows[content_hash] = row_id
            while len(rows) > self.per_session:
                rows.popitem(last=False)

    def before(self, session: str, content_hash: str | None) -> Served | None:
        """The pair the session was served before ``content_hash`` (the last one it was served when that pair
        is not among them, e.g. an uploaded pair is on screen); None when there is none."""
        if not session:
            return None
        with self._lock:
            s = self._sessions.get(session)
            served = list(s.served) if s is not None else []
        at = next((i for i in range(len(served) - 1, -1, -1) if served[i].content_hash == content_hash), len(served))
        return served[at - 1] if at > 0 else None

    def row(self, session: str, content_hash: str) -> str | None:
        """The row ``session`` saved last for the pair, or None."""
        if not session:
            return None
        with self._lock:
            s = self._sessions.get(session)
            return s.rows.get(content_hash) if s is not None else None
