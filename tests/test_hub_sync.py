"""Hub sync bookkeeping against what huggingface_hub really raises.

The Hub cannot be reached from here. Failures come from the real ``HfApi``: offline mode
(``HF_HUB_OFFLINE=1``), and HTTP errors that a tiny local stand-in for the Hub's HTTP API returns
(404 RepoNotFound, 401), which ``huggingface_hub`` turns into its own exception types. The same
stand-in accepts commits, for the one successful-push test: it implements only the endpoints
``create_commit`` and ``list_repo_files`` call (validate-yaml, preupload, commit, tree) and is not the
Hub; what the real Hub would do with these commits is not tested here.
"""
import base64
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import huggingface_hub.constants
import numpy as np
import pytest

from annotate.hub_sync import HubSync
from annotate.store import LabelStore

TOKEN = "hf_fakeTokenThatMustNeverAppear123"
REPO = "someone/anodfdnet-labels"


class FakeHub:
    """A local stand-in for the few Hub HTTP endpoints HfApi.create_commit and list_repo_files use."""

    def __init__(self, mode: str = "ok", delay_s: float = 0.0):
        self.mode, self.delay_s = mode, delay_s
        self.files: dict[str, bytes] = {}
        self.commits: list[list[tuple[str, str]]] = []
        self.auth: set[str] = set()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body, headers=()):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                hub.auth.add(self.headers.get("Authorization", ""))
                if hub.mode == "notfound":
                    return self._send(404, {"error": "Repository not found"}, [("X-Error-Code", "RepoNotFound")])
                if hub.mode == "unauthorized":
                    return self._send(401, {"error": "Invalid credentials in Authorization header"})
                if self.path.startswith("/api/validate-yaml"):
                    return self._send(200, {"errors": [], "warnings": []})
                if "/preupload/" in self.path:
                    time.sleep(hub.delay_s)
                    files = json.loads(body)["files"]
                    return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
                if "/commit/" in self.path:
                    ops = []
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            hub.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                            ops.append(("add", item["value"]["path"]))
                        elif item["key"] == "deletedFile":
                            hub.files.pop(item["value"]["path"], None)
                            ops.append(("delete", item["value"]["path"]))
                    hub.commits.append(ops)
                    oid = f"{len(hub.commits):040x}"
                    _, _, kind, owner, name = self.path.split("/")[:5]
                    return self._send(200, {"success": True, "commitOid": oid, "commitUrl": f"{hub.url}/{kind}/{owner}/{name}/commit/{oid}"})
                if "/tree/" in self.path:
                    return self._send(200, [{"type": "file", "path": p, "size": len(b), "oid": "0" * 40} for p, b in hub.files.items()])
                return self._send(404, {"error": f"not faked: {self.command} {self.path}"})

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_hub():
    hubs = []

    def start(mode="ok", delay_s=0.0):
        hubs.append(FakeHub(mode, delay_s))
        return hubs[-1]

    yield start
    for h in hubs:
        h.close()


def save_some(store: LabelStore, n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    ids = []
    for _ in range(n):
        img = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
        mask = np.zeros((20, 24), bool)
        mask[3:9, 4:10] = True
        ids.append(store.save(img, img[::-1].copy(), mask, "ann", "foreign body").id)
    return ids


def test_offline_saves_stay_local_and_wait_in_the_queue(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("ANODFDNET_DATASET_REPO", REPO)
    caplog.set_level(logging.DEBUG)
    store = LabelStore(tmp_path / "labels")
    sync = HubSync(store, base_delay_s=0.05, interval_s=0.05).start()  # configured from the environment
    try:
        assert sync.enabled and sync.repo_id == REPO
        save_some(store, 3)
        sync.notify()
        deadline = time.monotonic() + 10
        while sync.failures < 2 and time.monotonic() < deadline:  # the worker tried, failed, backed off, tried again
            time.sleep(0.02)
        assert sync.failures >= 2 and sync._thread.is_alive()
        assert sync.pending_count() == 3 and len(store.shards()) == 3
        text = sync.status_text()
        assert text.startswith(f"saved locally, 3 waiting to be pushed to {REPO}") and "offline" in text
        assert not (store.root / ".hub_ledger.jsonl").exists()
        save_some(store, 1, seed=1)  # saving goes on while the Hub is unreachable
        assert sync.pending_count() == 4
    finally:
        sync.stop()
    assert TOKEN not in sync.status_text() and TOKEN not in repr(sync)
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_backoff_grows_and_resets(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    store = LabelStore(tmp_path / "labels")
    save_some(store, 1)
    sync = HubSync(store, REPO, TOKEN, base_delay_s=1.0, max_delay_s=8.0)
    delays = []
    for _ in range(6):
        assert sync.push_once() == 0
        delays.append(sync.next_try_at - time.monotonic())
    for k, d in enumerate(delays):  # 1, 2, 4, 8, 8, 8 s, each +-20 %
        expected = min(8.0, 2.0**k)
        assert 0.75 * expected <= d <= 1.2 * expected
    assert sync.failures == 6 and "offline mode" in sync.last_error
    assert sync.pending_count() == 1


@pytest.mark.parametrize("mode, reason", [
    ("notfound", f"the dataset repo {REPO} does not exist or the token cannot write to it"),
    ("unauthorized", "the Hub refused the token (HTTP 401)"),
])
def test_hub_errors_keep_shards_queued(tmp_path, fake_hub, caplog, mode, reason):
    caplog.set_level(logging.DEBUG)
    hub = fake_hub(mode)
    store = LabelStore(tmp_path / "labels")
    save_some(store, 2)
    sync = HubSync(store, REPO, TOKEN, endpoint=hub.url)
    assert sync.push_once() == 0
    assert sync.last_error == reason and sync.failures == 1
    assert sync.pending_count() == 2 and len(store.shards()) == 2
    assert reason in sync.status_text() and TOKEN not in sync.status_text()
    assert hub.auth == {f"Bearer {TOKEN}"}  # the token went to the Hub, and nowhere else:
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_push_ledger_and_compaction_against_a_local_stand_in(tmp_path, fake_hub):
    hub = fake_hub()
    store = LabelStore(tmp_path / "labels")
    save_some(store, 3)
    sync = HubSync(store, REPO, TOKEN, endpoint=hub.url)
    assert sync.status_text() == f"saved locally, 3 waiting to be pushed to {REPO}"
    assert sync.push_once() == 3
    local = {f"data/{p.name}": p.read_bytes() for p in store.shards()}
    assert {k: v for k, v in hub.files.items() if k != "README.md"} == local
    assert "README.md" in hub.files and len(hub.commits) == 1  # one atomic commit
    ledger = [json.loads(line) for line in (store.root / ".hub_ledger.jsonl").read_text().splitlines()]
    assert {r["path"] for r in ledger} == set(local) | {"README.md"} and all(r["repo"] == REPO for r in ledger)
    assert sync.pending_count() == 0 and sync.status_text() == f"saved locally and pushed to the Hub dataset {REPO}"
    assert len(store.shards()) == 3  # pushing never deletes a local shard
    assert sync.push_once() == 0 and len(hub.commits) == 1  # nothing pushed twice

    save_some(store, 1, seed=5)  # one shard never pushed, then all four compacted into one
    store.compact()
    assert sync.pending_count() == 1
    assert sync.push_once() == 1
    merged = store.shards()[0].name
    assert sorted(hub.commits[-1]) == sorted([("add", f"data/{merged}")] + [("delete", p) for p in local])
    assert set(hub.files) == {"README.md", f"data/{merged}"}  # every row once on the Hub too


def test_a_slow_hub_never_blocks_saving(tmp_path, fake_hub):
    hub = fake_hub(delay_s=1.5)
    store = LabelStore(tmp_path / "labels")
    sync = HubSync(store, REPO, TOKEN, endpoint=hub.url, interval_s=0.05).start()
    try:
        save_some(store, 1)
        sync.notify()
        time.sleep(0.3)  # the worker is now waiting on the Hub's answer
        t0 = time.monotonic()
        save_some(store, 1, seed=1)
        assert time.monotonic() - t0 < 1.0
        assert sync.pending_count() == 2 and sync.failures == 0
    finally:
        sync.stop(timeout=10)
