"""A run's results: the journal that makes a run resumable, and ``results.parquet`` made from it.

``RUN/journal.jsonl`` gets one JSON line per finished pair, appended and flushed as soon as the pair's files
are written, by the one process that collects results (either engine's driver). A killed run therefore loses
at most the pairs in flight; a torn last line (a kill in the middle of a write) is cut off when the journal is
opened again. A rerun reads the ids in it and skips those pairs.

``RUN/results.parquet`` is the journal as one table (``SCHEMA``; one row per pair, the latest line of an id
wins), rewritten atomically (temporary file, fsync, rename) during the run and at its end, so it is always a
whole file. ``datasets.load_dataset("parquet", data_files="RUN/results.parquet")`` reads it.

Nothing here holds a run's rows in memory: the journal keeps the ids, the table is written from the journal file a
block at a time (Arrow's JSON reader), and ``ranked`` reads the ranking's columns and then only the top rows. A
million-pair run costs the driver about 160 MB and a 3 s rewrite (benchmarks/ARCHIVE_SCALE.md; 3.4 GB and 10 s when
the journal kept its rows as dicts, and 9 GB at the end to rank them).
"""
from __future__ import annotations

import io
import itertools
import json
import os
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

from ..errors import UserError
from ..json_safe import json_safe

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


PARSE = pj.ParseOptions(explicit_schema=SCHEMA, unexpected_field_behavior="ignore")
BLOCK_BYTES = 1 << 20  # journal bytes parsed at a time (about 900 rows): 8 MB blocks held 300 MB in Arrow's pool
ROW_GROUP_ROWS = 8192  # rows of a Parquet row group of results.parquet (blocks are put together up to it)


class Journal:
    """Append-only JSONL of finished pairs.

    It keeps only each id's latest row number in memory (about 120 bytes a pair), never the rows: a run of a
    million pairs held 3.4 GB of row dicts in the driver before (benchmarks/ARCHIVE_SCALE.md). ``tables()`` reads
    the rows back from the file with Arrow's JSON reader, a block at a time, to write the table.

    Every line must read as a row of SCHEMA. A line that does not (damaged on disk, or a run killed mid-line
    before the torn tail was cut) is moved to ``journal.damaged.jsonl`` beside it when the journal is opened, and
    its pair is done again."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._cut_torn_tail()
        ids = self._ids()
        if None in ids:
            ids = self._set_aside_damaged()
        self.latest: dict[str, int] = {}  # id -> number of its latest row in the file (the latest wins)
        for number, pid in enumerate(ids):
            self.latest[pid] = number
        self.rows_written = len(ids)
        self.repeated = len(self.latest) < len(ids)  # some id has more than one row: tables() must pick
        self._f = open(self.path, "a", encoding="utf-8")

    def _cut_torn_tail(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:  # read back from the end a block at a time, not the whole journal
            end = f.seek(0, os.SEEK_END)
            at = end
            while at > 0:
                start = max(0, at - 65536)
                f.seek(start)
                newline = f.read(at - start).rfind(b"\n")
                if newline >= 0:
                    break
                at = start
            cut = start + newline + 1 if at > 0 else 0
            if cut != end:
                f.truncate(cut)

    def _blocks(self):
        """The file's rows as Arrow record batches (SCHEMA), BLOCK_BYTES of the file at a time."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with pj.open_json(self.path, read_options=pj.ReadOptions(block_size=BLOCK_BYTES), parse_options=PARSE) as reader:
            yield from reader

    def _ids(self) -> list[str | None]:
        """Every row's id in file order; [None] when some line does not read as a row."""
        try:
            return [pid for batch in self._blocks() for pid in batch.column("id").to_pylist()]
        except pa.ArrowInvalid:
            return [None]
        finally:
            pa.default_memory_pool().release_unused()  # the blocks' memory, which the pool would otherwise keep

    def _set_aside_damaged(self) -> list[str]:
        """Move the lines that do not read as a row to journal.damaged.jsonl; keep the rest as they were, in order
        (copied line by line to a new journal that replaces the old one). Returns the kept rows' ids."""
        ids, damaged = [], []
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(self.path, "rb") as f, open(tmp, "wb") as out:
            for line in f:
                try:
                    pid = pj.read_json(io.BytesIO(line), parse_options=PARSE).column("id").to_pylist()
                except pa.ArrowInvalid:
                    pid = []
                if len(pid) == 1 and pid[0] is not None:
                    out.write(line)
                    ids.append(pid[0])
                else:
                    damaged.append(line)
            out.flush()
            os.fsync(out.fileno())
        with open(self.path.with_name("journal.damaged.jsonl"), "ab") as f:
            f.writelines(damaged)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        return ids

    def __contains__(self, pid: str) -> bool:
        return pid in self.latest

    def __len__(self) -> int:
        return len(self.latest)

    def add(self, row: dict) -> None:
        row = dict(row)
        row["alignment"] = json.dumps(row["alignment"]) if not isinstance(row["alignment"], str) else row["alignment"]
        try:
            line = json.dumps(row, allow_nan=False)
        except ValueError:  # NaN or infinity (a broken model): stored as null, which JSON and the table can hold
            line = json.dumps(json_safe(row), allow_nan=False)
        self._f.write(line + "\n")
        self._f.flush()
        self.repeated = self.repeated or row["id"] in self.latest
        self.latest[row["id"]] = self.rows_written
        self.rows_written += 1

    def tables(self):
        """Each pair's latest row as Arrow tables (SCHEMA), a block of the file at a time, in the file's order."""
        first = 0
        for batch in self._blocks():
            table = pa.Table.from_batches([batch], schema=SCHEMA)
            if self.repeated:
                ids = batch.column("id").to_pylist()
                table = table.filter(pa.array([self.latest.get(pid) == first + k for k, pid in enumerate(ids)]))
            first += batch.num_rows
            yield table

    def close(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()


def write_table(tables, path: Path, group_rows: int = ROW_GROUP_ROWS) -> Path:
    """Write Arrow tables of SCHEMA (``Journal.tables()``, or ``pa.Table.from_pylist(rows, schema=SCHEMA)``) as ``path``, atomically
    (temporary file, fsync, rename), in row groups of at least ``group_rows`` rows (but the last)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            with pq.ParquetWriter(f, SCHEMA) as writer:
                held: list[pa.Table] = []
                for table in itertools.chain(tables, [None]):
                    if table is not None:
                        held.append(table)
                    if held and (table is None or sum(t.num_rows for t in held) >= group_rows):
                        writer.write_table(pa.concat_tables(held), row_group_size=max(group_rows, 1 << 20))
                        held = []
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        pa.default_memory_pool().release_unused()
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
        write_table(self.journal.tables(), self.path)
        self.last = self.clock()
        self.took = self.last - start
        return True


ORDERS = {  # how a run's pairs are ranked (report.html, --to-queue); the id breaks ties, so each is one order
    "score": [("score_max", "descending"), ("area_pct", "descending"), ("id", "ascending")],
    "uncertainty": [("uncertain_pct", "descending"), ("entropy", "descending"), ("id", "ascending")],
}
RANKS = tuple(ORDERS)


def _decoded(rows: list[dict]) -> list[dict]:
    for r in rows:
        r["alignment"] = json.loads(r["alignment"]) if r.get("alignment") else {}
    return rows


def count_results(run: str | Path) -> int:
    path = Path(run) / "results.parquet"
    return pq.ParquetFile(path).metadata.num_rows if path.exists() else 0


def ranked(run: str | Path, top: int | None = None, rank: str = "score") -> list[dict]:
    """The ``top`` rows of ``RUN/results.parquet`` in ``rank``'s order (all of them when top is None), as dicts with
    each alignment decoded; a missing file is an empty list. Only the ranking's columns are read for every row;
    whole rows are read one row group (a block of the journal) at a time, so a large run costs the top rows, not
    the table, in memory (a whole row as Python objects is about 10 kB)."""
    if rank not in ORDERS:
        raise UserError(f"rank must be one of {', '.join(RANKS)}, got '{str(rank)[:40]}'.")
    path = Path(run) / "results.parquet"
    if not path.exists():
        return []
    order = ORDERS[rank]
    table = pq.ParquetFile(path)
    picked = pc.sort_indices(table.read(columns=[c for c, _ in order]), sort_keys=order).to_numpy().astype(np.int64)[:top]
    ends = np.cumsum([table.metadata.row_group(g).num_rows for g in range(table.num_row_groups)])
    groups = np.searchsorted(ends, picked, side="right")
    rows: list[dict | None] = [None] * len(picked)
    for g in np.unique(groups):
        at = np.flatnonzero(groups == g)
        first = ends[g - 1] if g else 0
        for k, row in zip(at, table.read_row_group(int(g)).take(picked[at] - first).to_pylist()):
            rows[k] = row
    return _decoded(rows)
