"""A run's results: the journal that makes a run resumable, and ``results.parquet`` made from it.

``RUN/journal.jsonl`` gets one JSON line per finished pair, appended and flushed as soon as the pair's files
are written, by the one process that collects results (either engine's driver). A killed run therefore loses
at most the pairs in flight; a torn last line (a kill in the middle of a write) is cut off when the journal is
opened again. A rerun reads the ids in it and skips those pairs.

``RUN/results.parquet`` is the journal as one table (``SCHEMA``; one row per pair, the latest line of an id
wins), rewritten atomically (temporary file, fsync, rename) during the run and at its end, so it is always a
whole file. ``datasets.load_dataset("parquet", data_files="RUN/results.parquet")`` reads it.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REGION = pa.struct([("x", pa.int32()), ("y", pa.int32()), ("w", pa.int32()), ("h", pa.int32()), ("area", pa.int64()),
                    ("max_prob", pa.float32()), ("mean_prob", pa.float32())])
SCHEMA = pa.schema([
    ("id", pa.string()),             # the pair's name in its source (a manifest's id)
    ("index", pa.int64()),           # its position in the source
    ("file_id", pa.string()),        # stem of its files under RUN (outputs.file_id)
    ("height", pa.int32()), ("width", pa.int32()),  # the current image's size; masks and maps have it
    ("score_max", pa.float32()),     # highest anomaly probability of the pair
    ("score_mean", pa.float32()),
    ("area_pct", pa.float32()),      # % of pixels at or above the threshold
    ("n_regions", pa.int32()),       # 8-connected anomalous regions
    ("regions", pa.list_(REGION)),   # the largest ones (outputs.MAX_REGIONS), largest first
    ("uncertain_pct", pa.float32()), # % of pixels near the threshold (anodfdnet.uncertainty)
    ("entropy", pa.float32()),
    ("aligned", pa.bool_()),         # the history was warped onto the current view
    ("align_verdict", pa.string()),  # one line: how, or why not
    ("uncovered_pct", pa.float32()), # % of the current view the aligned history does not cover
    ("alignment", pa.string()),      # the full alignment record (JSON of Alignment.meta)
    ("mask_png", pa.string()), ("heat_png", pa.string()),  # paths relative to RUN
    ("attempt", pa.int32()),         # the run (1, 2, ...) that wrote the row: resumed pairs keep theirs
])


class Journal:
    """Append-only JSONL of finished pairs."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._cut_torn_tail()
        self.rows: dict[str, dict] = {}
        if self.path.exists():
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    self.rows[row["id"]] = row
        self._f = open(self.path, "a", encoding="utf-8")

    def _cut_torn_tail(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            if not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def add(self, row: dict) -> None:
        row = dict(row)
        row["alignment"] = json.dumps(row["alignment"]) if not isinstance(row["alignment"], str) else row["alignment"]
        self._f.write(json.dumps(row) + "\n")
        self._f.flush()
        self.rows[row["id"]] = row

    def close(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()


def write_table(rows, path: Path) -> Path:
    """Write rows (dicts with SCHEMA's columns) as ``path``, atomically."""
    path = Path(path)
    table = pa.Table.from_pylist(list(rows), schema=SCHEMA)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        pq.write_table(table, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


class TableRefresh:
    """Rewrites ``results.parquet`` from the journal now and then while a run goes on (call it after each row).

    A rewrite converts and writes every row so far, so its cost grows with the run: it happens at most every
    ``every_s`` seconds *and* at most ``share`` of the time (after a rewrite that took s seconds, the next waits
    s / share), so the thread that collects results, which also feeds the model, is never mostly rewriting a
    large table. Returns True when it rewrote."""

    def __init__(self, journal: Journal, path: Path, every_s: float, share: float, clock=time.monotonic):
        self.journal, self.path, self.every_s, self.share, self.clock = journal, Path(path), every_s, share, clock
        self.last = clock()
        self.took = 0.0

    def __call__(self) -> bool:
        start = self.clock()
        if start - self.last < max(self.every_s, self.took / self.share):
            return False
        write_table(self.journal.rows.values(), self.path)
        self.last = self.clock()
        self.took = self.last - start
        return True


def read_results(run: str | Path) -> list[dict]:
    """The rows of ``RUN/results.parquet``, each alignment decoded; a missing file is an empty list."""
    path = Path(run) / "results.parquet"
    if not path.exists():
        return []
    rows = pq.read_table(path).to_pylist()
    for r in rows:
        r["alignment"] = json.loads(r["alignment"]) if r.get("alignment") else {}
    return rows


def worst_first(rows: list[dict]) -> list[dict]:
    """Rows by highest anomaly probability, then larger anomalous area, then id."""
    return sorted(rows, key=lambda r: (-r["score_max"], -r["area_pct"], r["id"]))
