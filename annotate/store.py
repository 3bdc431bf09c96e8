"""The label store: a Hugging Face ``datasets`` dataset on disk that saves never lose.

Layout of the store's folder (``$ANODFDNET_LABEL_DIR``, default ``./labels``)::

    README.md                 the dataset card (written once, when missing)
    data/<shard>.parquet      one shard per save; larger ones after compaction
    .compactions.jsonl        one line per compaction: the merged shard and the shards it replaced
    .compact.lock             held (flock) by the one compaction that may run at a time
    .hub_ledger.jsonl         shards pushed to the Hub (annotate/hub_sync.py)

``datasets.load_dataset(ROOT)`` loads it; the training code reads it as ``hf:ROOT``
(:class:`anodfdnet.data.labels.LabelSource`), with the schema of :data:`anodfdnet.data.labels.FEATURES`.

Why nothing is lost:

* **One shard per save, written whole or not at all.** A save writes its row to a hidden temporary
  file in ``data/``, fsyncs it, checks its schema, and renames it to ``<UTC time>-<row id>.parquet``
  (``os.replace`` is atomic), then fsyncs the folder. A process killed at any point leaves either
  the complete shard or a hidden temporary file that no reader looks at; the writer holds an advisory
  lock (flock) on its temporary file while it writes, so a store opened later (the app's start-up, the
  ``annotate`` commands) removes every temporary file whose writer is gone (killed) and never one still
  being written. Saves share no mutable file, so threads and processes save concurrently without locks.
* **Validation first.** Images, mask, annotator name and anomaly type are checked before anything is
  written; a rejected save raises :class:`~anodfdnet.errors.UserError` and leaves no file.
* **What training reads is what is stored.** A history of another size than the current is resized to
  the current's size (``anodfdnet.data.images.resize_rgb``, as every reader does) before it is stored and hashed.
* **Append-only, latest answer wins.** Saving a pair again (same content hash, same annotator) adds a
  row; :meth:`LabelStore.save` reports the rows it supersedes, and the training reader keeps each
  annotator's latest answer per pair (``anodfdnet.data.labels.latest_per_annotator``).
* **Safe compaction.** :meth:`LabelStore.compact` writes the merged shard under a temporary name,
  fsyncs it, appends ``{"merged", "sources"}`` to ``.compactions.jsonl`` (fsynced), renames the
  merged shard into place, and only then deletes the small shards. A crash before the rename leaves
  the small shards untouched (the journal line names a shard that never appeared and is ignored);
  a crash after it leaves every row in the merged shard and possibly still in a small one. That
  duplicate is harmless: the ``hf:`` reader de-duplicates rows by ``id``, and the next compaction
  (or :meth:`LabelStore.recover`) deletes the leftover small shards the journal names. Rows are
  never deleted, only shards whose every row is already in a durable merged shard.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from anodfdnet.errors import UserError
from anodfdnet.data.images import load_rgb, resize_rgb
from anodfdnet.data.labels import ANOMALY_TYPES, FEATURES, NO_ANOMALY, SCHEMA_VERSION, content_hash, utc_now_iso

ENV_DIR = "ANODFDNET_LABEL_DIR"
DEFAULT_DIR = "./labels"

ANNOTATOR_RE = re.compile(r"[A-Za-z0-9 _.@-]{1,64}")
MAX_NOTE = 2000
MAX_TEXT = 500  # source, model_checkpoint
MAX_SIDE = 8192
MIN_SIDE = 8

JOURNAL = ".compactions.jsonl"
LOCK = ".compact.lock"
TMP_PREFIX = ".tmp-"
STALE_TMP_S = 3600.0  # the dataset card's temporary file: removed when older (it is never locked)
FRESH_TMP_S = 10.0  # a temporary shard this young and still empty may be between its creation and its lock


class SchemaError(UserError):
    """A shard whose columns or types differ from ``anodfdnet.data.labels.FEATURES``."""


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


PNG_COMPRESSION = 1  # zlib level: the fastest; about 10 % larger files than level 4 and half the time


def png_bytes(a: np.ndarray) -> bytes:
    """Lossless PNG of a uint8 HxWx3 RGB image or an HxW mask (written as {0, 255}).

    OpenCV's encoder: at the same zlib level it is about twice as fast as Pillow's here, and it releases
    the GIL, so ``validate`` encodes the two images at once."""
    if a.ndim == 2:
        a = a.astype(bool).astype(np.uint8) * 255
    else:
        a = a[..., ::-1]  # OpenCV writes BGR
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(a), [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise UserError("the image could not be encoded as PNG.")
    return buf.tobytes()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _append_line(path: Path, record: dict) -> None:
    """Append one JSON line durably (O_APPEND: lines from several processes never interleave)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> list[dict]:
    """The complete JSON lines of a journal; a torn last line (a crash mid-append) is skipped."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _remove_if_abandoned(tmp: Path) -> int:
    """Delete a writer's temporary file if no process holds its lock (1), else leave it (0).

    A writer creates the file and locks it at once; a file that is unlocked but empty and a few
    seconds old may be in that instant, so it is left for a later start-up."""
    try:
        fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return 0  # a live writer holds it
            raise
        st = os.fstat(fd)
        if st.st_size == 0 and time.time() - st.st_mtime < FRESH_TMP_S:
            return 0
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
            return 1
        return 0
    finally:
        os.close(fd)


def _schema_error(features) -> str | None:
    """Why ``features`` is not the label schema, or None when it is."""
    if features == FEATURES:
        return None
    have, want = dict(features), dict(FEATURES)
    missing = [c for c in want if c not in have]
    extra = [c for c in have if c not in want]
    typed = [c for c in want if c in have and have[c] != want[c]]
    parts = []
    if missing:
        parts.append("missing " + ", ".join(missing))
    if extra:
        parts.append("unexpected " + ", ".join(extra))
    if typed:
        parts.append("wrong type for " + ", ".join(f"{c} ({have[c]!r}, expected {want[c]!r})" for c in typed))
    if not parts:
        parts.append("columns in another order")
    return "; ".join(parts)


def _arrow_features(schema):
    """The datasets Features a Parquet/Arrow schema carries (its 'huggingface' metadata), else inferred."""
    from datasets import Features

    return Features.from_arrow_schema(schema)


class LabelStore:
    """Saves labelled pairs as Parquet shards under ``ROOT/data`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root if root is not None else os.environ.get(ENV_DIR) or DEFAULT_DIR).expanduser()
        self.data_dir = self.root / "data"
        self._lock = threading.Lock()
        # shard name -> [(id, content hash, annotator)]; shards are immutable
        self._index: dict[str, list[tuple[str, str, str]]] = {}
        self.remove_stale_temporaries()

    def __repr__(self) -> str:
        return f"LabelStore({str(self.root)!r})"

    # -- saving -------------------------------------------------------------------------------------
    def validate(self, history, current, mask, annotator, anomaly_type, note="", source="", model_checkpoint="") -> dict:
        """Check one label and return its row (without id, created_at); raise UserError saying why not."""
        return self._checked(history, current, mask, annotator, anomaly_type, note, source, model_checkpoint)[0]

    def _checked(self, history, current, mask, annotator, anomaly_type, note, source, model_checkpoint) -> tuple[dict, tuple | None]:
        """(row, the history's (width, height) if it was resized to the current's size, else None)."""
        hist = self._image(history, "history")
        cur = self._image(current, "current")
        resized = None
        if hist.shape[:2] != cur.shape[:2]:  # stored as training reads it (anodfdnet.data.load_pair)
            resized = (hist.shape[1], hist.shape[0])
            hist = resize_rgb(hist, cur.shape[:2])
        m = self._mask(mask, cur.shape[:2])
        annotator = (annotator or "").strip()
        if not ANNOTATOR_RE.fullmatch(annotator):
            if not annotator:
                raise UserError("give your name as the annotator (1 to 64 letters, digits, spaces or _ . @ -).")
            if len(annotator) > 64:
                raise UserError(f"the annotator name is {len(annotator)} characters long; use at most 64.")
            bad = sorted({ch for ch in annotator if not ANNOTATOR_RE.fullmatch(ch)})
            raise UserError(f"the annotator name may hold only letters, digits, spaces and _ . @ - (not {' '.join(repr(c) for c in bad)}).")
        if anomaly_type not in ANOMALY_TYPES:
            raise UserError(f"'{anomaly_type}' is not an anomaly type; choose one of: {', '.join(ANOMALY_TYPES)}.")
        painted = bool(m.any())
        if anomaly_type == NO_ANOMALY and painted:
            raise UserError(f"the type is '{NO_ANOMALY}' but the mask is not empty: clear the mask or choose the anomaly's type.")
        if anomaly_type != NO_ANOMALY and not painted:
            raise UserError(f"the mask is empty: paint the {anomaly_type}, or choose '{NO_ANOMALY}'.")
        note = "" if note is None else str(note)
        if len(note) > MAX_NOTE:
            raise UserError(f"the note is {len(note)} characters long; keep it under {MAX_NOTE}.")
        for what, text in (("source", source), ("model checkpoint", model_checkpoint)):
            if len(str(text or "")) > MAX_TEXT:
                raise UserError(f"the {what} text is over {MAX_TEXT} characters.")
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
        }, resized

    @staticmethod
    def pair_hash(history, current) -> str:
        """The content hash a save of this pair records: of the history resized to the current's size."""
        hist, cur = load_rgb(history), load_rgb(current)
        if hist.shape[:2] != cur.shape[:2]:
            hist = resize_rgb(hist, cur.shape[:2])
        return content_hash(hist, cur)

    def save(self, history, current, mask, annotator, anomaly_type, note="", source="upload", model_checkpoint="") -> SavedRow:
        """Validate and write one label as its own shard; returns the row id and the store's size.

        history, current: images (paths, PIL, arrays); mask: bool HxW (or {0,1} / {0,255}) in the
        current image's size. A rejected label raises UserError and writes nothing.
        """
        row, resized = self._checked(history, current, mask, annotator, anomaly_type, note, source, model_checkpoint)
        replaces = tuple(self.answers(row["content_hash"], row["annotator"]))
        rid = uuid.uuid4().hex
        created = utc_now_iso()
        row = {"id": rid, **row, "created_at": created}
        name = f"{created.replace('-', '').replace(':', '').replace('.', '')}-{rid}.parquet"  # 20250131T120000123456Z-<id>
        import pyarrow as pa

        # An Arrow table in the label schema (its metadata carries the datasets features), not a
        # datasets.Dataset: Dataset.from_dict fingerprints its contents, ~40 ms for a 1024x1024 pair.
        self.write_shard(pa.Table.from_pylist([row], schema=FEATURES.arrow_schema), name)
        with self._lock:
            self._index[name] = [(rid, row["content_hash"], row["annotator"])]
        return SavedRow(rid, self.size(), name, row["content_hash"], replaces, resized)

    def write_shard(self, ds, name: str, before_publish=None) -> Path:
        """Write a ``datasets.Dataset`` (or a ``pyarrow.Table``) as ``data/<name>`` atomically; refuse one
        not in the label schema.

        The shard is written to a hidden temporary file, fsynced, its schema read back and checked,
        ``before_publish()`` called (compaction journals there), then renamed into place.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = ds if isinstance(ds, pa.Table) else ds.with_format("arrow")[:]  # [:] applies any indices mapping
        why = _schema_error(_arrow_features(table.schema))
        if why:
            raise SchemaError(f"refusing to write shard '{name}': its schema differs from the label schema ({why}).")
        if not name.endswith(".parquet") or "/" in name or name.startswith("."):
            raise ValueError(f"bad shard name {name!r}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._ensure_card()
        final = self.data_dir / name
        tmp = self.data_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}.parquet.partial"
        f = open(tmp, "xb")
        try:
            # Locked from creation until the rename (or this process's death): remove_stale_temporaries,
            # run by every store opened meanwhile, leaves a locked temporary file alone.
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            # pyarrow directly: the table's schema metadata holds the datasets features, and
            # Dataset.to_parquet would draw a progress bar in the app's log for every one-row shard.
            pq.write_table(table, f)
            f.flush()
            os.fsync(f.fileno())
            why = _schema_error(_arrow_features(pq.read_schema(tmp)))
            if why:
                raise SchemaError(f"refusing to publish shard '{name}': its schema on disk differs from the label schema ({why}).")
            if before_publish is not None:
                before_publish()
            os.replace(tmp, final)
            tmp = None
            _fsync_dir(self.data_dir)
        finally:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            f.close()
        return final

    # -- reading ------------------------------------------------------------------------------------
    def shards(self) -> list[Path]:
        """The published shards, oldest first (names start with their UTC time)."""
        if not self.data_dir.is_dir():
            return []
        return sorted(p for p in self.data_dir.glob("*.parquet") if not p.name.startswith("."))

    def _shard_index(self, path: Path) -> list[tuple[str, str, str]] | None:
        with self._lock:
            hit = self._index.get(path.name)
        if hit is not None:
            return hit
        import pyarrow.parquet as pq

        try:
            t = pq.read_table(path, columns=["id", "content_hash", "annotator"])
        except FileNotFoundError:  # removed by a compaction since listing; its rows are in the merged shard
            return None
        entry = list(zip(*(t.column(c).to_pylist() for c in ("id", "content_hash", "annotator"))))
        with self._lock:
            self._index[path.name] = entry
        return entry

    def _all_rows(self) -> dict[str, tuple[str, str]]:
        """row id -> (content hash, annotator), over every published shard."""
        for _ in range(3):
            out: dict[str, tuple[str, str]] = {}
            gone = False
            for p in self.shards():
                entry = self._shard_index(p)
                if entry is None:
                    gone = True
                    break
                out.update((rid, (h, a)) for rid, h, a in entry)
            if not gone:
                return out
        return out

    def size(self) -> int:
        """Number of distinct labelled rows (ids) in the store."""
        return len(self._all_rows())

    def labelled_hashes(self) -> set[str]:
        """Content hashes of every labelled pair in the store."""
        return {h for h, _ in self._all_rows().values()}

    def answers(self, content_hash: str, annotator: str) -> list[str]:
        """Row ids of one annotator's labels of one pair (a new save supersedes them for training)."""
        annotator = (annotator or "").strip()
        return sorted(rid for rid, (h, a) in self._all_rows().items() if h == content_hash and a == annotator)

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
            groups, group, rows, size = [], [], 0, 0
            for p in self.shards():
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
                    t = pq.read_table(p)
                    why = _schema_error(_arrow_features(t.schema))
                    if why:  # never merge (or delete) a shard the schema does not describe
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
                self.write_shard(ds, name, before_publish=lambda r=record: _append_line(self.root / JOURNAL, r))
                with self._lock:
                    self._index[name] = list(zip(*(table.column(c).to_pylist() for c in ("id", "content_hash", "annotator"))))
                removed += self._remove_sources(used)
                merged.append(name)
                total += len(keep)
            return CompactionReport(merged, removed, total)

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
                removed += _remove_if_abandoned(tmp)
        if self.root.is_dir():
            now = time.time()
            for tmp in self.root.glob(".README.*.tmp"):
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
            _fsync_dir(self.data_dir)
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

    # -- the dataset card ---------------------------------------------------------------------------
    def card_text(self) -> str:
        import yaml

        meta = {
            "license": os.environ.get("ANODFDNET_LABEL_LICENSE", "other"),
            "pretty_name": "AnoDFDNet anomaly masks",
            "task_categories": ["image-segmentation"],
            "tags": ["anomaly-detection", "change-detection", "anodfdnet"],
            "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}],
            "dataset_info": {"features": FEATURES._to_yaml_list()},
        }
        types = ", ".join(f"`{t}`" for t in ANOMALY_TYPES)
        return (
            "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n"
            "# AnoDFDNet anomaly masks\n\n"
            "Pairs of inspection images of one place at two times (*history*, earlier and known good; *current*, later)\n"
            "with a mask, painted in the AnoDFDNet app's Label tab, of what is anomalous in the current image.\n\n"
            f"Schema version {SCHEMA_VERSION}; one row per saved label:\n\n"
            "- `id`: unique row id; `content_hash`: sha256 of the pair's pixels (the pair's identity; split train/val on it)\n"
            "- `history`, `current`: lossless PNG, both the current image's size: a history of another size was\n"
            "  resized to it before it was stored (area averaging when shrinking, bilinear when enlarging), exactly as\n"
            "  training reads a pair, so the stored pixels are the ones a model learns from\n"
            "- `mask`: 8-bit PNG {0, 255}, the current image's size\n"
            f"- `anomaly_type`: one of {types} (`no anomaly` exactly when the mask is empty)\n"
            "- `annotator`, `note`, `created_at` (ISO 8601 UTC), `source` (where the pair came from),\n"
            "  `model_checkpoint` (the model that pre-filled the mask, empty when painted from nothing), `schema_version`\n\n"
            "Rows are append-only: saving a pair again adds a row. When one annotator labelled one pair several times\n"
            "(same `content_hash`, same `annotator`), training uses that annotator's latest row (by `created_at`) and\n"
            "ignores the earlier ones; other annotators' rows of the pair are used as well.\n\n"
            "Each save adds one Parquet shard under `data/`; a compaction may merge shards. Read with\n"
            "`datasets.load_dataset(\"<this folder or repo>\")`, or train on it with AnoDFDNet:\n"
            "`python -m anodfdnet retrain --labels <this folder or repo> --from lite-d2 --out runs/retrain`.\n"
            "If a row id appears twice (an interrupted compaction), the rows are identical: keep one.\n\n"
            "License: set the `license` field above to the terms the images may be shared under.\n"
        )

    def _ensure_card(self) -> None:
        card = self.root / "README.md"
        if card.exists():
            return
        tmp = self.root / f".README.{uuid.uuid4().hex}.tmp"
        tmp.write_text(self.card_text())
        try:
            os.link(tmp, card)  # create-if-missing, atomically: never overwrites an edited card
        except FileExistsError:
            pass
        finally:
            tmp.unlink()

    # -- helpers ------------------------------------------------------------------------------------
    @staticmethod
    def _image(src, what: str) -> np.ndarray:
        if src is None:
            raise UserError(f"there is no {what} image: upload one (or take the next pair from the queue).")
        try:
            a = load_rgb(src)
        except TypeError:
            raise UserError(f"the {what} image is not an image (got {type(src).__name__}).") from None
        h, w = a.shape[:2]
        if min(h, w) < MIN_SIDE or max(h, w) > MAX_SIDE:
            raise UserError(f"the {what} image is {w}x{h}; sides must lie between {MIN_SIDE} and {MAX_SIDE} pixels.")
        return a

    @staticmethod
    def _mask(mask, shape) -> np.ndarray:
        if mask is None:
            raise UserError("there is no mask: paint the anomaly, or choose 'no anomaly' with an empty mask.")
        if isinstance(mask, (str, os.PathLike, Image.Image)):
            try:
                im = Image.open(mask) if not isinstance(mask, Image.Image) else mask
                mask = np.array(im.convert("L") if im.mode not in ("1", "L") else im)
            except (OSError, ValueError) as e:
                raise UserError(f"the mask cannot be read ({e}).") from None
        m = np.asarray(mask)
        if m.ndim != 2:
            raise UserError(f"the mask must be one channel (H x W), got shape {tuple(m.shape)}.")
        if m.shape != tuple(shape):
            raise UserError(f"the mask is {m.shape[1]}x{m.shape[0]} but the current image is {shape[1]}x{shape[0]}; they must match.")
        if m.dtype != bool:
            values = np.unique(m)
            if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
                raise UserError("the mask is not binary: its values must be 0/1 or 0/255 (or bool).")
            m = m != 0
        return m
