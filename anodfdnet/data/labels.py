"""The label dataset: its one schema, and the ``hf:DIR_OR_REPO`` data source that reads it for training.

The app's brush tab (``annotate/``) writes labels with :data:`FEATURES`; the training code reads them
back with ``parse_spec("hf:labels")`` (a local folder) or ``parse_spec("hf:OWNER/NAME")`` (a Hugging
Face Hub dataset). Nothing else defines the columns.

One row is one labelled pair:

================  =========  ===============================================================
column            type       meaning
================  =========  ===============================================================
id                string     the row's unique id (32 hex digits, a UUID4)
history           Image      the earlier, known-good image, PNG (lossless); readers resize it to the current's size
current           Image      the later image, PNG; the mask is in its coordinates
mask              Image      8-bit greyscale PNG {0, 255}, the current image's size
annotator         string     who painted it: ``[A-Za-z0-9 _.@-]{1,64}``
anomaly_type      string     one of :data:`ANOMALY_TYPES`; ``"no anomaly"`` iff the mask is empty
note              string     free text (may be empty)
created_at        string     ISO 8601 UTC, e.g. ``2025-01-31T12:00:00.123456Z``
source            string     where the pair came from (``upload``, or the queue SPEC and pair name)
content_hash      string     :func:`content_hash` of (history, current): the pair's identity
model_checkpoint  string     the checkpoint that pre-filled the mask ("" when painted from nothing)
schema_version    int32      :data:`SCHEMA_VERSION`
================  =========  ===============================================================

``anomaly_type`` is a plain string checked against :data:`ANOMALY_TYPES` at write time rather than a
``ClassLabel``: a ``ClassLabel`` stores an index whose meaning is the list of names, so adding a type
would change the schema of every new shard and break loading a folder that mixes old and new shards.
With strings, a new type is a new allowed value and old shards stay valid.

Rows are de-duplicated by ``id`` when read (a compaction interrupted between writing its merged shard
and deleting the small ones may briefly leave a row in two shards; see ``annotate/store.py``), then
:func:`latest_per_annotator` keeps one answer per annotator per pair (the store is append-only: a
pair saved again by the same person adds a row that replaces their earlier one for training), and
the rows are ordered by ``(created_at, id)`` so the order does not depend on how the shards are grouped.
``key(i)`` is the content hash, so the train/validation split (``data.split``) keeps every label of
one pair on the same side, whoever painted it.
"""
from __future__ import annotations

import functools
import hashlib
import re
import time
from pathlib import Path

import numpy as np

from ..errors import UserError
from .images import load_rgb
from .source import Pair, Source, load_pair
from .spec import register_source

SCHEMA_VERSION = 1

NO_ANOMALY = "no anomaly"
ANOMALY_TYPES = ("foreign body", "missing part", "loose part", "oil leak", "scratch / crack", "other", NO_ANOMALY)


@functools.cache
def _features():
    from datasets import Features, Image, Value

    return Features(
        {
            "id": Value("string"),
            "history": Image(),
            "current": Image(),
            "mask": Image(),
            "annotator": Value("string"),
            "anomaly_type": Value("string"),
            "note": Value("string"),
            "created_at": Value("string"),
            "source": Value("string"),
            "content_hash": Value("string"),
            "model_checkpoint": Value("string"),
            "schema_version": Value("int32"),
        }
    )


def __getattr__(name: str):
    # FEATURES and COLUMNS need the datasets package (about a second to import), so they are built on first
    # use: every source module is imported with anodfdnet.data, and most users of the package never read labels.
    if name == "FEATURES":
        return _features()
    if name == "COLUMNS":
        return tuple(_features())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def content_hash(history, current) -> str:
    """sha256 (hex) of the pair's pixels: each image's shape, then its uint8 RGB bytes, history first.

    Any input ``images.load_rgb`` accepts; the same pixels give the same hash whatever the file format.
    """
    h = hashlib.sha256(b"anodfdnet-pair-v1\0")
    for img in (history, current):
        a = np.ascontiguousarray(load_rgb(img))
        h.update(f"{a.shape[0]}x{a.shape[1]}x{a.shape[2]}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def utc_now_iso() -> str:
    """The current time as ``created_at`` writes it: ISO 8601 UTC with microseconds and a Z."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def latest_per_annotator(ids, content_hashes, annotators, created_at) -> list[int]:
    """The label policy training reads: the index of each annotator's latest row for each pair.

    The four sequences are the columns of the rows (one entry per row, ids already unique). Rows of one
    pair (``content_hash``) by one ``annotator`` answer the same question, and the latest
    (``created_at``, then ``id`` to break a tie) replaces the earlier ones; rows of one pair by different
    annotators are all kept. Returns indices in ``(created_at, id)`` order. Other policies (k labels per
    pair, review, agreement) can replace this function; its inputs are plain columns.
    """
    latest: dict[tuple[str, str], int] = {}
    for i, key in enumerate(zip(content_hashes, annotators)):
        j = latest.get(key)
        if j is None or (created_at[i], ids[i]) > (created_at[j], ids[j]):
            latest[key] = i
    return sorted(latest.values(), key=lambda i: (created_at[i], ids[i]))


_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _caused_by(e: BaseException | None, kind: type) -> bool:
    while e is not None:
        if isinstance(e, kind):
            return True
        e = e.__cause__ or e.__context__
    return False


class LabelSource(Source):
    """``hf:DIR_OR_REPO``: the label dataset as pairs (mask from the PNG): one per unique row id, and of
    the rows one annotator saved for one pair only the latest (:func:`latest_per_annotator`).

    DIR is a local folder written by ``annotate.LabelStore`` (Parquet shards under ``data/``);
    anything else of the form OWNER/NAME is a Hugging Face Hub dataset id. Both are read with
    ``datasets.load_dataset``. ``names`` are the row ids; ``key(i)`` is the pair's content hash.
    """

    def __init__(self, arg: str, spec: str | None = None):
        self.spec = spec or f"hf:{arg}"
        ds = self._open_dataset(arg)
        missing = [c for c in _features() if c not in ds.column_names]
        if missing:
            raise UserError(f"data spec '{self.spec}': the dataset lacks the label columns {', '.join(missing)}; is it an AnoDFDNet label dataset?")
        versions = set(ds["schema_version"])
        if versions and max(versions) > SCHEMA_VERSION:
            raise UserError(f"data spec '{self.spec}': labels of schema version {max(versions)} need a newer AnoDFDNet (this one reads up to {SCHEMA_VERSION}).")
        ids, created = list(ds["id"]), list(ds["created_at"])
        hashes, annotators = list(ds["content_hash"]), list(ds["annotator"])
        first: dict[str, int] = {}
        for i, rid in enumerate(ids):
            first.setdefault(rid, i)
        unique = list(first.values())
        chosen = latest_per_annotator(*([col[i] for i in unique] for col in (ids, hashes, annotators, created)))
        order = [unique[k] for k in chosen]
        self._ds = ds
        self._rows = order
        self.names = [ids[i] for i in order]
        self._keys = [hashes[i] for i in order]

    def _open_dataset(self, arg: str):
        import datasets

        path = Path(arg).expanduser()
        local = path.is_dir()
        if local:
            if not any((path / "data").glob("*.parquet")):
                raise UserError(f"data spec '{self.spec}': '{path}' holds no labels yet (no data/*.parquet shards).")
            target = str(path)
        elif _REPO_ID.fullmatch(arg) and not path.exists():
            target = arg
        else:
            raise UserError(f"data spec '{self.spec}': '{arg}' is neither a label folder nor a Hub dataset id (OWNER/NAME).")
        # A local folder is loaded with an explicit data_files pattern: datasets 5.2 then keys its
        # Arrow cache on the resolved shard list, whereas load_dataset(DIR) alone keys it on the card's
        # pattern and serves the first load's rows forever after, missing every later save.
        kwargs = {"data_files": {"train": "data/*.parquet"}} if local else {}
        last = None
        for attempt in range(3):
            try:
                return datasets.load_dataset(target, split="train", **kwargs)
            except Exception as e:  # offline, no such repo, no access, unreadable shard
                if local and _caused_by(e, FileNotFoundError):
                    # A compaction removed a small shard between listing and reading; its rows are in
                    # the merged shard, so listing again finds them.
                    last = e
                    time.sleep(0.2 * (attempt + 1))
                    continue
                where = "the folder" if local else "the Hub dataset"
                raise UserError(f"data spec '{self.spec}': could not load {where} '{target}' ({_first_line(e)}).") from None
        raise UserError(f"data spec '{self.spec}': could not load '{target}' ({_first_line(last)}).")

    def key(self, i: int) -> str:
        return self._keys[self._index(i)]

    def row(self, i: int) -> dict:
        """The raw row (images decoded as PIL) of pair ``i``."""
        return self._ds[self._rows[self._index(i)]]

    def _load(self, i: int) -> Pair:
        r = self._ds[self._rows[i]]
        return load_pair(r["id"], r["history"], r["current"], r["mask"])


register_source(
    "hf",
    lambda arg, spec: LabelSource(arg, spec),
    "hf:DIR_OR_REPO   labels saved by the app's Label tab: a local folder (default ./labels) or a Hub dataset id",
)
