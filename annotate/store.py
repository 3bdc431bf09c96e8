"""The label store: a Hugging Face ``datasets`` dataset on disk that saves never lose.

Layout of the store's folder (``$ANODFDNET_LABEL_DIR``, default ``./labels``)::

    README.md                 the dataset card (annotate/card.py: written when missing, refreshed on compaction)
    data/<shard>.parquet      one shard per save; larger ones after compaction
    .compactions.jsonl        one line per compaction: the merged shard and the shards it replaced
    .compact.lock             held (flock) by the one compaction that may run at a time
    .hub_ledger.jsonl         shards pushed to the Hub (annotate/hub_sync.py)
    quarantine/<shard>.parquet  a file found in data/ that is not a readable label shard, moved aside,
                              with <shard>.parquet.why (``anodfdnet/data/label_files.py``)

``datasets.load_dataset(ROOT)`` loads it; the training code reads it as ``hf:ROOT``
(:class:`anodfdnet.data.labels.LabelSource`), with the schema of :data:`anodfdnet.data.labels.FEATURES`.
Rows are answers (``kind`` ``label``), answers for gold pairs (``gold``) and reviewers' verdicts
(``review``); which of them training reads is a policy (``anodfdnet/data/label_policies.py``).

Why nothing is lost:

* **One shard per save, written whole or not at all** (``annotate/shards.py``). A save writes its row to a
  hidden temporary file in ``data/``, fsyncs it, checks its schema, and renames it to
  ``<UTC time>-<row id>.parquet``, then fsyncs the folder. A process killed at any point leaves either
  the complete shard or a hidden temporary file that no reader looks at; the writer holds an advisory
  lock (flock) on its temporary file while it writes, so a store opened later (the app's start-up, the
  ``annotate`` commands) removes every temporary file whose writer is gone (killed) and never one still
  being written. Saves share no mutable file, so threads and processes save concurrently without locks.
  A review is saved the same way: a new row, never an edit of an old shard.
* **Validation first.** Images, mask, annotator name, identity and anomaly type are checked before anything
  is written; a rejected save raises :class:`~anodfdnet.errors.UserError` and leaves no file.
* **What training reads is what is stored.** A history of another size than the current is resized to
  the current's size (``anodfdnet.data.images.resize_rgb``, as every reader does) before it is stored and hashed.
* **Append-only, latest answer wins.** Saving a pair again (same content hash, same annotator) adds a
  row; :meth:`LabelStore.save` reports the rows it supersedes, and the policies read each annotator's
  latest answer per pair.
* **One bad file never stops the store.** A file in ``data/`` that is not a readable label shard (garbage,
  a copy cut short, another schema) is moved aside to ``quarantine/`` the first time a reader meets it
  (logged, listed by ``python -m annotate status``); reading, saving and compaction go on without it.
* **Safe compaction.** :meth:`LabelStore.compact` writes the merged shard under a temporary name,
  fsyncs it, appends ``{"merged", "sources"}`` to ``.compactions.jsonl`` (fsynced), renames the
  merged shard into place, and only then deletes the small shards. A crash before the rename leaves
  the small shards untouched (the journal line names a shard that never appeared and is ignored);
  a crash after it leaves every row in the merged shard and possibly still in a small one. That
  duplicate is harmless: the ``hf:`` reader de-duplicates rows by ``id``, and the next compaction
  (or :meth:`LabelStore.recover`) deletes the leftover small shards the journal names. Rows are
  never deleted, only shards whose every row is already in a durable merged shard. Version 1 shards are
  merged in the current schema (``shards.upgrade_table``); their rows keep their values and version.
"""
from __future__ import annotations

import contextlib
import fcntl
import io
import os
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from anodfdnet.errors import UserError
from anodfdnet.data.images import load_rgb, resize_rgb
from anodfdnet.data.label_files import QUARANTINE, Quarantined, error_line, quarantine, quarantined, shard_problem
from anodfdnet.data.label_policies import VERDICTS, Agreement, PairLabels, RowInfo, group_rows, pair_agreement
from anodfdnet.data.labels import FEATURES, IDENTITIES, SCHEMA_VERSION, content_hash, row_info, utc_now_iso

from . import card
from .checks import MAX_TEXT, check_annotator, check_answer, check_note, read_image, read_mask
from .shards import (TMP_PREFIX, SchemaError, append_line, png_bytes, publish_shard, read_jsonl, remove_if_abandoned,
                     upgrade_table)

__all__ = ["LabelStore", "SavedRow", "CompactionReport", "SchemaError", "Snapshot", "png_bytes"]

ENV_DIR = "ANODFDNET_LABEL_DIR"
DEFAULT_DIR = "./labels"


JOURNAL = ".compactions.jsonl"
LOCK = ".compact.lock"
STALE_TMP_S = 3600.0  # the dataset card's temporary file: removed when older (it is never locked)
INDEX_COLUMNS = ("id", "content_hash", "annotator", "anomaly_type", "created_at", "source", "identity", "kind", "verdict",
                 "gold_iou")
MASK_CACHE = 512  # decoded masks kept (row ids are immutable)


@dataclass(frozen=True)
class SavedRow:
    id: str
    size: int  # rows in the store after this save
    shard: str  # file name under data/
    content_hash: str
    replaces: tuple[str, ...] = ()  # earlier rows of this annotator for this pair, superseded for training
    history_resized: tuple[int, int] | None = None  # the history's (width, height) when it was resized


@dataclass(frozen=True)
class CompactionReport:
    merged: list[str]  # new shard names
    removed: int  # small shards deleted
    rows: int  # rows now held by the new shards
    quarantined: list[str] = ()  # unreadable shards moved aside during this compaction


class Snapshot:
    """The rows of the store at one moment (ids unique), with their masks on demand: what the policies,
    the queue, the status and the review read. ``rows[i].index == i``."""

    def __init__(self, store: "LabelStore", rows: list[RowInfo]):
        self.store = store
        self.rows = rows
        self._pairs: dict[str, PairLabels] | None = None

    def read_masks(self, indices) -> list[np.ndarray]:
        return self.store.masks([self.rows[i].id for i in indices])

    @property
    def pairs(self) -> dict[str, PairLabels]:
        if self._pairs is None:
            self._pairs = group_rows(self.rows)
        return self._pairs

    def agreement(self, pair: PairLabels) -> Agreement:
        return self.store.agreement(pair, self)


class LabelStore:
    """Saves labelled pairs as Parquet shards under ``ROOT/data`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root if root is not None else os.environ.get(ENV_DIR) or DEFAULT_DIR).expanduser()
        self.data_dir = self.root / "data"
        self._lock = threading.Lock()
        # shard name -> [(column values of INDEX_COLUMNS)]; shards are immutable
        self._index: dict[str, list[tuple]] = {}
        self._masks: OrderedDict[str, np.ndarray] = OrderedDict()
        self._agreements: dict[tuple[str, ...], Agreement] = {}
        self._bad: dict[str, str] = {}  # shard name -> why it is not read (moved to quarantine/, or could not be)
        self._card_checked = False
        self.remove_stale_temporaries()

    def __repr__(self) -> str:
        return f"LabelStore({str(self.root)!r})"

    # -- saving -------------------------------------------------------------------------------------
    def validate(self, history, current, mask, annotator, anomaly_type, note="", source="", model_checkpoint="",
                 identity="name", kind="label", gold_iou=None) -> dict:
        """Check one label and return its row (without id, created_at); raise UserError saying why not."""
        return self._checked(history, current, mask, annotator, anomaly_type, note, source, model_checkpoint,
                             identity, kind, gold_iou)[0]

    def _checked(self, history, current, mask, annotator, anomaly_type, note, source, model_checkpoint,
                 identity="name", kind="label", gold_iou=None) -> tuple[dict, tuple | None]:
        """(row, the history's (width, height) if it was resized to the current's size, else None)."""
        hist = read_image(history, "history")
        cur = read_image(current, "current")
        resized = None
        if hist.shape[:2] != cur.shape[:2]:  # stored as training reads it (anodfdnet.data.load_pair)
            resized = (hist.shape[1], hist.shape[0])
            hist = resize_rgb(hist, cur.shape[:2])
        m = read_mask(mask, cur.shape[:2])
        annotator = check_annotator(annotator)
        check_answer(anomaly_type, bool(m.any()))
        note = check_note(note)
        for what, text in (("source", source), ("model checkpoint", model_checkpoint)):
            if len(str(text or "")) > MAX_TEXT:
                raise UserError(f"the {what} text is over {MAX_TEXT} characters.")
        if identity not in IDENTITIES:
            raise UserError(f"the identity kind must be one of {', '.join(IDENTITIES)}.")
        if kind not in ("label", "gold"):
            raise UserError("a save is a label or a gold answer; reviews are saved with save_review.")
        if (kind == "gold") != (gold_iou is not None) or (gold_iou is not None and not 0.0 <= float(gold_iou) <= 1.0):
            raise UserError("a gold answer carries its IoU with the gold mask (0 to 1), and only a gold answer does.")
        with ThreadPoolExecutor(2, thread_name_prefix="label-png") as pool:  # the two big encodes at once
            hist_png, cur_png = pool.map(png_bytes, (hist, cur))
        return {
            "history": {"bytes": hist_png, "path": None},
            "current": {"bytes": cur_png, "path": None},
            "mask": {"bytes": png_bytes(m), "path": None},
            "annotator": annotator,
            "anomaly_type": anomaly_type,
            "note": note,
            "source": str(source or ""),
            "content_hash": content_hash(hist, cur),
            "model_checkpoint": str(model_checkpoint or ""),
            "schema_version": SCHEMA_VERSION,
            "identity": identity,
            "kind": kind,
            "verdict": "",
            "gold_iou": None if gold_iou is None else float(gold_iou),
        }, resized

    @staticmethod
    def pair_hash(history, current) -> str:
        """The content hash a save of this pair records: of the history resized to the current's size."""
        hist, cur = load_rgb(history), load_rgb(current)
        if hist.shape[:2] != cur.shape[:2]:
            hist = resize_rgb(hist, cur.shape[:2])
        return content_hash(hist, cur)

    def save(self, history, current, mask, annotator, anomaly_type, note="", source="upload", model_checkpoint="",
             identity="name", kind="label", gold_iou=None) -> SavedRow:
        """Validate and write one answer as its own shard; returns the row id and the store's size.

        history, current: images (paths, PIL, arrays); mask: bool HxW (or {0,1} / {0,255}) in the
        current image's size. identity: how the annotator is known (``hf``, ``name``, ``anonymous``);
        kind: ``label``, or ``gold`` with ``gold_iou``. A rejected label raises UserError and writes nothing.
        """
        row, resized = self._checked(history, current, mask, annotator, anomaly_type, note, source, model_checkpoint,
                                     identity, kind, gold_iou)
        replaces = tuple(self.answers(row["content_hash"], row["annotator"]))
        rid, shard = self._write_row(row)
        return SavedRow(rid, self.size(), shard, row["content_hash"], replaces, resized)

    def save_review(self, content_hash_: str, reviewer: str, verdict: str, mask, anomaly_type: str, note: str = "",
                    identity: str = "name") -> SavedRow:
        """Record a reviewer's verdict on a labelled pair as a new row (old shards are never edited).

        verdict: ``accept`` (mask: what was accepted, e.g. the consensus), ``reject`` (mask: what was
        rejected), ``correct`` (mask: the reviewer's corrected mask). The pair's images are copied from one
        of its label rows, byte for byte, so the row stands alone as a training example.
        """
        if verdict not in VERDICTS:
            raise UserError(f"the verdict must be one of {', '.join(VERDICTS)}.")
        reviewer = check_annotator(reviewer, "reviewer")
        if identity not in IDENTITIES:
            raise UserError(f"the identity kind must be one of {', '.join(IDENTITIES)}.")
        note = check_note(note)
        snap = self.snapshot()
        pair = snap.pairs.get(content_hash_)
        if pair is None or not pair.answers:
            raise UserError("that pair has no label to review.")
        source_row = pair.answer_rows()[0]
        images = self.read_row(source_row.id, columns=("history", "current", "source"))
        w, h = Image.open(io.BytesIO(images["current"]["bytes"])).size
        m = read_mask(mask, (h, w))
        check_answer(anomaly_type, bool(m.any()))
        row = {
            "history": {"bytes": images["history"]["bytes"], "path": None},
            "current": {"bytes": images["current"]["bytes"], "path": None},
            "mask": {"bytes": png_bytes(m), "path": None},
            "annotator": reviewer, "anomaly_type": anomaly_type, "note": note, "source": images["source"],
            "content_hash": content_hash_, "model_checkpoint": "", "schema_version": SCHEMA_VERSION,
            "identity": identity, "kind": "review", "verdict": verdict, "gold_iou": None,
        }
        rid, shard = self._write_row(row)
        return SavedRow(rid, self.size(), shard, content_hash_)

    def _write_row(self, row: dict) -> tuple[str, str]:
        import pyarrow as pa

        rid = uuid.uuid4().hex
        created = utc_now_iso()
        row = {"id": rid, **row, "created_at": created}
        name = f"{created.replace('-', '').replace(':', '').replace('.', '')}-{rid}.parquet"  # 20250131T120000123456Z-<id>
        # An Arrow table in the label schema (its metadata carries the datasets features), not a
        # datasets.Dataset: Dataset.from_dict fingerprints its contents, ~40 ms for a 1024x1024 pair.
        self.write_shard(pa.Table.from_pylist([row], schema=FEATURES.arrow_schema), name)
        with self._lock:
            self._index[name] = [tuple(row[c] for c in INDEX_COLUMNS)]
        return rid, name

    def write_shard(self, ds, name: str, before_publish=None) -> Path:
        """Write a ``datasets.Dataset`` (or a ``pyarrow.Table``) as ``data/<name>`` atomically; refuse one
        not in the label schema (``shards.publish_shard``)."""
        import pyarrow as pa

        table = ds if isinstance(ds, pa.Table) else ds.with_format("arrow")[:]  # [:] applies any indices mapping
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._ensure_card()
        return publish_shard(table, self.data_dir, name, before_publish)

    # -- reading ------------------------------------------------------------------------------------
    def shards(self) -> list[Path]:
        """The published shards, oldest first (names start with their UTC time), less any found unreadable."""
        if not self.data_dir.is_dir():
            return []
        return sorted(p for p in self.data_dir.glob("*.parquet") if not p.name.startswith(".") and p.name not in self._bad)

    def readable_shards(self) -> list[Path]:
        """The published shards that read as label shards (each checked once; a bad one is moved aside)."""
        return [p for p in self.shards() if self._shard_index(p) is not None and p.name not in self._bad]

    def quarantined(self) -> list[Quarantined]:
        """The shards moved aside to ``ROOT/quarantine/`` because they could not be read (with why)."""
        return quarantined(self.root)

    def _set_aside(self, path: Path, why: str) -> str:
        """Move an unreadable shard to quarantine/ (``anodfdnet.data.label_files``) and skip it from now on;
        returns a sentence naming it."""
        with self._lock:
            self._bad[path.name] = why
            self._index.pop(path.name, None)
        moved = quarantine(path, why)
        where = f"moved aside to {QUARANTINE}/{moved.name}" if moved is not None else "skipped"
        return f"the label shard data/{path.name} is unreadable ({why}) and was {where}"

    def _shard_index(self, path: Path) -> list[tuple] | None:
        """The INDEX_COLUMNS of a shard's rows (cached); None when the file vanished (a compaction merged
        it); [] for a file that is not a readable label shard, which is moved aside (quarantine)."""
        with self._lock:
            hit = self._index.get(path.name)
            if path.name in self._bad:
                return []
        if hit is not None:
            return hit
        import pyarrow.parquet as pq

        try:
            why = shard_problem(path)
            if why is None:
                names = set(pq.read_schema(path).names)
                t = pq.read_table(path, columns=[c for c in INDEX_COLUMNS if c in names])
        except FileNotFoundError:  # removed by a compaction since listing; its rows are in the merged shard
            return None
        except Exception as e:  # a damaged page behind a good footer (pyarrow's errors have no common base)
            why = f"its index columns cannot be read ({error_line(e)})"
        if why is not None:
            self._set_aside(path, why)
            return []
        n = t.num_rows
        cols = [t.column(c).to_pylist() if c in names else [None] * n for c in INDEX_COLUMNS]
        entry = list(zip(*cols)) if n else []
        with self._lock:
            self._index[path.name] = entry
        return entry

    def _all_rows(self) -> dict[str, tuple]:
        """row id -> its INDEX_COLUMNS values (plus the shard name last), over every published shard."""
        for _ in range(3):
            out: dict[str, tuple] = {}
            gone = False
            for p in self.shards():
                entry = self._shard_index(p)
                if entry is None:
                    gone = True
                    break
                out.update((r[0], (*r, p.name)) for r in entry)
            if not gone:
                return out
        return out

    def snapshot(self) -> Snapshot:
        """Every row (v1 rows as v1 meant them), ordered by (created_at, id)."""
        values = sorted(self._all_rows().values(), key=lambda r: (r[4] or "", r[0]))
        return Snapshot(self, [row_info(i, dict(zip(INDEX_COLUMNS, r))) for i, r in enumerate(values)])

    def size(self) -> int:
        """Number of distinct rows (ids) in the store."""
        return len(self._all_rows())

    def labelled_hashes(self) -> set[str]:
        """Content hashes of every pair with a label or gold answer in the store."""
        return {r[1] for r in self._all_rows().values() if (r[7] or "label") != "review"}

    def answers(self, content_hash: str, annotator: str) -> list[str]:
        """Row ids of one annotator's answers for one pair (a new save supersedes them for training)."""
        annotator = (annotator or "").strip()
        return sorted(r[0] for r in self._all_rows().values()
                      if r[1] == content_hash and r[2] == annotator and (r[7] or "label") != "review")

    def masks(self, row_ids) -> list[np.ndarray]:
        """The masks (bool HxW) of rows by id, decoded once and cached (rows never change)."""
        row_ids = list(row_ids)
        with self._lock:
            missing = [r for r in dict.fromkeys(row_ids) if r not in self._masks]
        if missing:
            for rid, value in self._read(missing, ("mask",)).items():
                m = cv2.imdecode(np.frombuffer(value["mask"]["bytes"], np.uint8), cv2.IMREAD_GRAYSCALE) > 0
                with self._lock:
                    self._masks[rid] = m
                    while len(self._masks) > MASK_CACHE:
                        self._masks.popitem(last=False)
        out = []
        for rid in row_ids:
            with self._lock:
                m = self._masks.get(rid)
            if m is None:  # evicted meanwhile by a larger request
                m = self.masks([rid])[0]
            out.append(m)
        return out

    def read_row(self, row_id: str, columns=("history", "current", "mask", "source")) -> dict:
        """Some columns of one row as stored (images as ``{"bytes", "path"}``)."""
        return self._read([row_id], columns)[row_id]

    def _read(self, row_ids: list[str], columns) -> dict[str, dict]:
        """{row id: {column: value}} read from the shards that hold the rows; retried if a compaction
        moves a row meanwhile. An unknown id is a UserError."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        want, out = set(row_ids), {}
        for _ in range(3):
            where: dict[str, list[str]] = {}
            rows = self._all_rows()
            for rid in want - set(out):
                if rid not in rows:
                    raise UserError(f"there is no row {rid[:40]!r} in the label store.")
                where.setdefault(rows[rid][-1], []).append(rid)
            for shard, ids in where.items():
                try:
                    t = pq.read_table(self.data_dir / shard, columns=["id", *columns], filters=pc.field("id").isin(ids))
                except FileNotFoundError:
                    continue
                except Exception as e:  # a damaged page: move the shard aside, name it
                    raise UserError(self._set_aside(self.data_dir / shard, f"its rows cannot be read ({error_line(e)})")
                                    + "; try again.") from None
                for r in t.to_pylist():
                    out[r["id"]] = r
            if want <= set(out):
                return out
        raise UserError("the label store changed while reading; try again.")

    def agreement(self, pair: PairLabels, snapshot: Snapshot | None = None) -> Agreement:
        """The agreement of a pair's answers (cached by the answers' row ids)."""
        key = tuple(sorted(r.id for r in pair.answers.values()))
        with self._lock:
            hit = self._agreements.get(key)
        if hit is None:
            snap = snapshot or self.snapshot()
            hit = pair_agreement(pair, snap.read_masks)
            with self._lock:
                self._agreements[key] = hit
        return hit

    # -- compaction ---------------------------------------------------------------------------------
    def compact(self, max_rows: int = 1000, max_mb: float = 512.0, min_shards: int = 2) -> CompactionReport:
        """Merge small shards (oldest first) into shards of at most ``max_rows`` rows / ``max_mb`` MB.

        Runs one at a time (a lock file); saves go on meanwhile. Safe against a crash at any point
        (module docstring). Shards already holding ``max_rows`` rows are left alone.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        if max_rows < 2:
            raise UserError("compaction needs --max-rows of at least 2.")
        with self._compaction_lock():
            self._recover_locked()
            bad_before = set(self._bad)
            groups, group, rows, size = [], [], 0, 0
            for p in self.readable_shards():
                try:
                    n, b = pq.ParquetFile(p).metadata.num_rows, p.stat().st_size
                except FileNotFoundError:
                    continue
                if n >= max_rows:
                    continue
                if group and (rows + n > max_rows or size + b > max_mb * 1e6):
                    groups.append(group)
                    group, rows, size = [], 0, 0
                group.append(p)
                rows, size = rows + n, size + b
            groups.append(group)
            merged, removed, total = [], 0, 0
            for group in groups:
                if len(group) < min_shards:
                    continue
                tables, used = [], []
                for p in group:
                    try:
                        t = upgrade_table(pq.read_table(p))
                    except FileNotFoundError:
                        continue
                    except Exception as e:  # a damaged page behind a good footer: move it aside, merge the rest
                        self._set_aside(p, f"its data cannot be read ({error_line(e)})")
                        continue
                    if t is None:  # never merge (or delete) a shard the schema does not describe
                        continue
                    tables.append(t.replace_schema_metadata(None))
                    used.append(p)
                if len(used) < min_shards:
                    continue
                table = pa.concat_tables(tables)
                ids = table.column("id").to_pylist()
                seen, keep = set(), []
                for i, rid in enumerate(ids):
                    if rid not in seen:
                        seen.add(rid)
                        keep.append(i)
                table = table.take(keep)
                ds = table.cast(FEATURES.arrow_schema)
                name = f"{used[0].name.split('-', 1)[0]}-compact-{uuid.uuid4().hex}.parquet"
                record = {"merged": name, "sources": [p.name for p in used], "rows": len(keep), "at": utc_now_iso()}
                self.write_shard(ds, name, before_publish=lambda r=record: append_line(self.root / JOURNAL, r))
                removed += self._remove_sources(used)
                merged.append(name)
                total += len(keep)
            return CompactionReport(merged, removed, total, sorted(set(self._bad) - bad_before))

    def recover(self) -> int:
        """Finish interrupted compactions and remove stale temporary files; returns shards removed."""
        with self._compaction_lock():
            return self._recover_locked()

    def compactions(self) -> list[dict]:
        """The compaction journal: ``{"merged", "sources", "rows", "at"}`` records, oldest first."""
        return read_jsonl(self.root / JOURNAL)

    def _recover_locked(self) -> int:
        removed = 0
        for rec in self.compactions():
            if (self.data_dir / str(rec.get("merged", ""))).is_file():
                left = [self.data_dir / s for s in rec.get("sources", []) if (self.data_dir / s).exists()]
                if left:
                    removed += self._remove_sources(left)
        self.remove_stale_temporaries()
        return removed

    def remove_stale_temporaries(self) -> int:
        """Remove the temporary files of writers that are gone (a save or compaction killed mid-write);
        returns how many. A temporary shard whose writer still holds its lock is never touched."""
        removed = 0
        if self.data_dir.is_dir():
            for tmp in self.data_dir.glob(f"{TMP_PREFIX}*"):
                removed += remove_if_abandoned(tmp)
        if self.root.is_dir():
            now = time.time()
            for tmp in [*self.root.glob(".README.*.tmp"), *self.root.glob(".README.md.*.tmp")]:
                with contextlib.suppress(FileNotFoundError):
                    if now - tmp.stat().st_mtime > STALE_TMP_S:
                        tmp.unlink()
                        removed += 1
        return removed

    def _remove_sources(self, paths) -> int:
        n = 0
        for p in paths:
            try:
                p.unlink()
                n += 1
            except FileNotFoundError:
                pass
            with self._lock:
                self._index.pop(p.name, None)
        if n:
            from .shards import fsync_dir

            fsync_dir(self.data_dir)
        return n

    @contextlib.contextmanager
    def _compaction_lock(self):
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK, "a+") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(f"another compaction of '{self.root}' is running; try again when it ends.") from None
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    # -- the dataset card (annotate/card.py) --------------------------------------------------------
    def card_text(self, summary_markdown: str | None = None) -> str:
        return card.card_text(self.root / "README.md", summary_markdown)

    def _ensure_card(self) -> None:
        """Write the card when it is missing or describes an older schema (once per store object)."""
        if self._card_checked:
            return
        card.ensure_card(self.root / "README.md")
        self._card_checked = True

    def refresh_card(self, summary_markdown: str | None) -> None:
        """Rewrite the card with a current summary (compaction calls it); text below the summary is kept."""
        self.root.mkdir(parents=True, exist_ok=True)
        card.write_card(self.root / "README.md", summary_markdown)
