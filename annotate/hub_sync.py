"""Pushing saved shards to a Hugging Face Hub dataset, in the background, without ever blocking a save.

On when both ``HF_TOKEN`` and ``ANODFDNET_DATASET_REPO`` (``OWNER/NAME`` of an existing dataset repo)
are set. A worker thread looks for local shards that are not yet in the ledger and pushes them in one
commit (``HfApi.create_commit``, each shard added as ``data/<shard>.parquet``; never
``Dataset.push_to_hub``, which replaces a split's files). A commit is atomic on the Hub: every shard
of it arrives or none does. After a commit succeeds, one line per shard is appended to the ledger
``ROOT/.hub_ledger.jsonl``; a shard in the ledger is never pushed again.

- Failures (offline, no access, Hub down) are retried with exponential backoff (2 s doubling up to
  10 min, with jitter); the shards stay queued. ``HF_HUB_OFFLINE=1`` makes every try fail at once.
- A local shard is never deleted here. A shard merged by ``LabelStore.compact`` is pushed in a commit
  that also deletes, on the Hub, those of its source shards the Hub holds, so the Hub dataset never
  holds a row twice and never loses one.
- Several app processes may share a store: two of them may push the same shard; the second commit
  re-adds identical bytes, which is harmless.
- The token goes to ``HfApi`` only; it is never logged, never put in a status text or an error message
  (messages are scrubbed), never sent to the browser.
- The README.md dataset card is pushed with the first shards, and again whenever it changed (a compaction
  refreshes its summary): the ledger records the sha256 of the card each time it went up.
"""
from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from pathlib import Path

from anodfdnet.data.labels import utc_now_iso

from .shards import append_line, read_jsonl
from .store import LabelStore

ENV_REPO = "ANODFDNET_DATASET_REPO"
ENV_TOKEN = "HF_TOKEN"
LEDGER = ".hub_ledger.jsonl"
CARD = "README.md"
MAX_FILES_PER_COMMIT = 50
MAX_BYTES_PER_COMMIT = 2_000_000_000

log = logging.getLogger(__name__)


class HubSync:
    """Background uploader of a :class:`LabelStore`'s shards; see the module docstring."""

    def __init__(self, store: LabelStore, repo_id: str | None = None, token: str | None = None, *,
                 endpoint: str | None = None, interval_s: float = 30.0, base_delay_s: float = 2.0,
                 max_delay_s: float = 600.0):
        self.store = store
        self.repo_id = (repo_id if repo_id is not None else os.environ.get(ENV_REPO, "")).strip()
        self._token = token if token is not None else os.environ.get(ENV_TOKEN, "")
        self.enabled = bool(self.repo_id and self._token)
        self.endpoint = endpoint
        self.interval_s = interval_s
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.ledger_path = store.root / LEDGER
        self.failures = 0
        self.last_error: str | None = None
        self.last_push_at: str | None = None
        self.next_try_at = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._push_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._api = None

    def __repr__(self) -> str:  # never shows the token
        return f"HubSync(repo={self.repo_id!r}, enabled={self.enabled})"

    # -- bookkeeping --------------------------------------------------------------------------------
    def pushed(self) -> set[str]:
        """Paths in the repo (``data/<shard>.parquet``, ``README.md``) the ledger says were pushed."""
        return {r["path"] for r in read_jsonl(self.ledger_path) if r.get("repo") == self.repo_id and "path" in r}

    def pending(self) -> list[Path]:
        """Local shards not yet pushed, oldest first."""
        done = self.pushed()
        return [p for p in self.store.readable_shards() if f"data/{p.name}" not in done]  # never an unreadable file

    def card_pending(self) -> bool:
        """True when the local card differs from the last one pushed (or none was pushed)."""
        card = self.store.root / CARD
        if not card.is_file():
            return False
        pushed = [r for r in read_jsonl(self.ledger_path) if r.get("repo") == self.repo_id and r.get("path") == CARD]
        return not pushed or pushed[-1].get("sha256") != hashlib.sha256(card.read_bytes()).hexdigest()

    def pending_count(self) -> int:
        return len(self.pending()) if self.enabled else 0

    def status_text(self) -> str:
        """One honest line for the UI: where the labels are and what still waits to go to the Hub."""
        if not self.enabled:
            return "saved locally (Hub sync is off: set HF_TOKEN and ANODFDNET_DATASET_REPO to push labels to a Hub dataset)"
        n = self.pending_count()
        if n == 0:
            return f"saved locally and pushed to the Hub dataset {self.repo_id}"
        text = f"saved locally, {n} waiting to be pushed to {self.repo_id}"
        if self.last_error:
            wait = int(round(self.next_try_at - time.monotonic()))
            text += f" (last try failed: {self.last_error}; " + (f"next try in {wait} s)" if wait >= 2 else "trying again now)")
        return text

    # -- the worker ---------------------------------------------------------------------------------
    def start(self) -> "HubSync":
        """Start the background thread (a no-op when sync is off or it already runs)."""
        if self.enabled and (self._thread is None or not self._thread.is_alive()):
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="anodfdnet-hub-sync", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def notify(self) -> None:
        """A shard was saved: push soon (after the current backoff, if a try just failed)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            delay = self.next_try_at - time.monotonic()
            if delay > 0:
                self._wake.wait(min(delay, self.interval_s))
                self._wake.clear()
                continue
            try:
                self.push_once()
            except Exception:  # push_once records its own failures; this is only a last guard
                log.exception("hub sync: unexpected error")
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def push_once(self) -> int:
        """Try once to push the pending shards (up to 50 files / 2 GB a commit); returns how many went up.

        A failure is recorded (``last_error``, ``failures``, backoff in ``next_try_at``), not raised.
        """
        if not self.enabled:
            return 0
        with self._push_lock:
            pending = self.pending()[:MAX_FILES_PER_COMMIT]
            if not pending and not self.card_pending():
                self._ok()
                return 0
            try:
                n = self._push(pending)
            except Exception as e:
                self._failed(e)
                return 0
            self._ok()
            return n

    def _push(self, shards: list[Path]) -> int:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        api = self._get_api()
        adds, names, total = [], [], 0
        for p in shards:
            try:
                size = p.stat().st_size
                if adds and total + size > MAX_BYTES_PER_COMMIT:
                    break
                adds.append(CommitOperationAdd(path_in_repo=f"data/{p.name}", path_or_fileobj=str(p)))
            except FileNotFoundError:  # compacted away since listing: its rows are in the merged shard
                continue
            names.append(p.name)
            total += size
        card = self.store.root / CARD
        with_card = self.card_pending()
        card_bytes = card.read_bytes() if with_card else b""
        if with_card:
            adds.append(CommitOperationAdd(path_in_repo=CARD, path_or_fileobj=card_bytes))
        if not adds:
            return 0
        # Shards a pushed compaction replaced: delete those the Hub holds, in the same commit.
        sources = {s for rec in self.store.compactions() if rec.get("merged") in names for s in rec.get("sources", [])}
        deletes = []
        if sources:
            remote = set(api.list_repo_files(self.repo_id, repo_type="dataset"))
            deletes = [CommitOperationDelete(path_in_repo=f"data/{s}") for s in sorted(sources) if f"data/{s}" in remote]
        info = api.create_commit(
            repo_id=self.repo_id, repo_type="dataset", operations=adds + deletes,
            commit_message=(f"Add {len(names)} label shard(s)" if names else "Update the dataset card")
            + (f", remove {len(deletes)} compacted" if deletes else ""),
        )
        commit = getattr(info, "oid", None) or ""
        at = utc_now_iso()
        for name in names:
            append_line(self.ledger_path, {"repo": self.repo_id, "path": f"data/{name}", "commit": commit, "at": at})
        if with_card:
            append_line(self.ledger_path, {"repo": self.repo_id, "path": CARD, "commit": commit, "at": at,
                                           "sha256": hashlib.sha256(card_bytes).hexdigest()})
        self.last_push_at = at
        return len(names)

    def _get_api(self):
        if self._api is None:
            from huggingface_hub import HfApi

            self._api = HfApi(token=self._token, endpoint=self.endpoint)
        return self._api

    def _ok(self) -> None:
        self.failures = 0
        self.last_error = None
        self.next_try_at = 0.0

    def _failed(self, e: Exception) -> None:
        self.failures += 1
        self.last_error = self._describe(e)
        delay = min(self.max_delay_s, self.base_delay_s * 2 ** (self.failures - 1)) * random.uniform(0.8, 1.2)
        self.next_try_at = time.monotonic() + delay
        log.warning("hub sync: push to %s failed (%s); retrying in %.0f s", self.repo_id, self.last_error, delay)

    def _describe(self, e: Exception) -> str:
        """A short, token-free reason for the UI and the log."""
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

        status = getattr(getattr(e, "response", None), "status_code", None)
        if isinstance(e, OfflineModeIsEnabled):
            text = "offline mode is on (HF_HUB_OFFLINE=1)"
        elif isinstance(e, RepositoryNotFoundError):
            text = f"the dataset repo {self.repo_id} does not exist or the token cannot write to it"
        elif isinstance(e, HfHubHTTPError) and status in (401, 403):
            text = f"the Hub refused the token (HTTP {status})"
        elif isinstance(e, HfHubHTTPError):
            text = f"the Hub answered HTTP {status}" if status else f"Hub error: {(str(e).strip().splitlines() or [''])[0][:200]}"
        elif isinstance(e, (ConnectionError, TimeoutError)) or type(e).__module__.startswith(("httpx", "httpcore")):
            text = f"cannot reach the Hub ({type(e).__name__})"
        else:
            first = (str(e).strip().splitlines() or [""])[0][:200]
            text = type(e).__name__ + (f": {first}" if first else "")
        if self._token:
            text = text.replace(self._token, "***")
        return text
