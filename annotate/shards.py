"""The files of the label store, each written whole or not at all: shards, journals, their temporary files.

No policy here, only durability: :func:`publish_shard` writes a Parquet shard to a hidden temporary file
holding an advisory lock (flock), fsyncs it, checks its schema, and renames it into place (``os.replace``
is atomic), then fsyncs the folder; :func:`append_line` appends a JSON line with O_APPEND and fsync;
:func:`remove_if_abandoned` removes a temporary file whose writer is gone and never one a live writer holds.
:func:`upgrade_table` brings a version 1 shard to the current schema (compaction merges old shards so).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
import uuid
from pathlib import Path

import cv2
import numpy as np

from anodfdnet.errors import UserError
from anodfdnet.data.label_files import arrow_features, schema_error  # the one check of the label schema
from anodfdnet.data.labels import FEATURES, V1_FEATURES, V2_COLUMNS

TMP_PREFIX = ".tmp-"
FRESH_TMP_S = 10.0  # a temporary shard this young and still empty may be between its creation and its lock


class SchemaError(UserError):
    """A shard whose columns or types differ from ``anodfdnet.data.labels.FEATURES``."""


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


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_line(path: Path, record: dict) -> None:
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


def remove_if_abandoned(tmp: Path) -> int:
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


def upgrade_table(table):
    """A version 1 shard's table in the current schema: identity 'name', kind 'label', verdict '', gold_iou
    null (what a v1 row meant); a table already current is returned as it is; None for any other schema."""
    import pyarrow as pa

    features = arrow_features(table.schema)
    if schema_error(features) is None:
        return table
    if features != V1_FEATURES:
        return None
    n = table.num_rows
    defaults = {"identity": "name", "kind": "label", "verdict": "", "gold_iou": None}
    columns = {c: table.column(c) for c in table.column_names}
    for c in V2_COLUMNS:
        columns[c] = pa.array([defaults[c]] * n, type=FEATURES.arrow_schema.field(c).type)
    return pa.table({c: columns[c] for c in FEATURES}).cast(FEATURES.arrow_schema)


def publish_shard(table, folder: Path, name: str, before_publish=None) -> Path:
    """Write a ``pyarrow.Table`` in the label schema as ``folder/name`` atomically; refuse another schema.

    The shard is written to a hidden temporary file that stays locked (flock) until the rename or this
    process's death, fsynced, its schema read back and checked, ``before_publish()`` called (compaction
    journals there), then renamed into place and the folder fsynced.
    """
    import pyarrow.parquet as pq

    why = schema_error(arrow_features(table.schema))
    if why:
        raise SchemaError(f"refusing to write shard '{name}': its schema differs from the label schema ({why}).")
    if not name.endswith(".parquet") or "/" in name or name.startswith("."):
        raise ValueError(f"bad shard name {name!r}")
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    tmp = folder / f"{TMP_PREFIX}{uuid.uuid4().hex}.parquet.partial"
    f = open(tmp, "xb")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        # pyarrow directly: the table's schema metadata holds the datasets features, and
        # Dataset.to_parquet would draw a progress bar in the app's log for every one-row shard.
        pq.write_table(table, f)
        f.flush()
        os.fsync(f.fileno())
        why = schema_error(arrow_features(pq.read_schema(tmp)))
        if why:
            raise SchemaError(f"refusing to publish shard '{name}': its schema on disk differs from the label schema ({why}).")
        if before_publish is not None:
            before_publish()
        os.replace(tmp, final)
        tmp = None
        fsync_dir(folder)
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        f.close()
    return final


def write_text_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` whole: a temporary file beside it, fsynced, renamed."""
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "x") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        fsync_dir(path.parent)
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
