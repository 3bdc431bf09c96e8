"""The label folder's shard files: which ones are label shards this version reads, and quarantine for the rest.

A label folder (written by ``annotate.LabelStore``, read by ``hf:DIR``) keeps its rows in
``data/*.parquet``. One file there that is not a readable label shard (garbage, a copy cut short, a
Parquet file of another schema) would stop every reader of the folder: ``datasets.load_dataset`` fails
on the whole folder, and the store's index cannot be built. So every reader checks a shard before it
uses it (:func:`shard_problem`: its Parquet footer is read and its schema must be the current label
schema or version 1's) and moves a bad one aside with :func:`quarantine`, to
``ROOT/quarantine/<name>`` beside a ``<name>.why`` file saying why, logged as a warning naming the file.
Nothing is deleted: the owner can look at the file, repair it and move it back. No reader looks in
``quarantine/`` and the Hub sync never pushes it. :func:`quarantined` lists what was moved aside.

Also here, as the one definition the writer (``annotate/shards.py``) and the readers share:
:func:`arrow_features` and :func:`schema_error` (is a Parquet schema the label schema, and if not, why).
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

QUARANTINE = "quarantine"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quarantined:
    name: str  # the file's name in ROOT/quarantine/
    reason: str


def arrow_features(schema):
    """The datasets Features a Parquet/Arrow schema carries (its 'huggingface' metadata), else inferred."""
    from datasets import Features

    return Features.from_arrow_schema(schema)


def schema_error(features) -> str | None:
    """Why ``features`` is not the current label schema, or None when it is."""
    from .label_schema import features as label_features

    FEATURES = label_features()
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


def error_line(e: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters, control characters as ``?``)."""
    text = str(e).strip().splitlines()
    first = "".join(ch if ch.isprintable() else "?" for ch in text[0][:200]) if text else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def shard_problem(path: Path) -> str | None:
    """Why ``path`` is not a label shard this version reads (unreadable, or another schema), else None.
    Reads the Parquet footer only. A file that vanished meanwhile (a compaction merged it) raises
    FileNotFoundError; other I/O trouble (e.g. no permission) is reported as a problem of the file."""
    import pyarrow.parquet as pq

    from .label_schema import v1_features

    try:
        schema = pq.read_schema(path)
    except FileNotFoundError:
        raise
    except Exception as e:  # ArrowInvalid (not Parquet, cut short), OSError: the file cannot be read
        return f"not a readable Parquet file ({error_line(e)})"
    try:
        features = arrow_features(schema)
    except Exception as e:  # metadata that does not describe datasets features
        return f"its schema cannot be read as dataset features ({error_line(e)})"
    why = schema_error(features)
    if why is None or features == v1_features():
        return None
    return f"not in the label schema ({why})"


def table_problem(path: Path) -> str | None:
    """Like :func:`shard_problem`, then every row group read too (a damaged page passes the footer check)."""
    import pyarrow.parquet as pq

    why = shard_problem(path)
    if why is not None:
        return why
    try:
        pq.read_table(path)
    except FileNotFoundError:
        raise
    except Exception as e:
        return f"its data cannot be read ({error_line(e)})"
    return None


def quarantine(path: Path, reason: str) -> Path | None:
    """Move the shard ``ROOT/data/<name>`` to ``ROOT/quarantine/<name>`` (a free name if that one is taken)
    with ``<name>.why`` beside it, and log a warning naming it. Returns the new path; None when another
    process moved it first or the move failed (then the warning says so and readers still skip it)."""
    path = Path(path)
    folder = path.parent.parent / QUARANTINE
    why_file = None
    try:
        folder.mkdir(exist_ok=True)
        target = folder / path.name
        n = 1
        while target.exists():
            target = folder / f"{path.stem}.{n}{path.suffix}"
            n += 1
        why_file = folder / f"{target.name}.why"
        why_file.write_text(reason + "\n")
        os.rename(path, target)
    except OSError as e:
        if why_file is not None:
            with contextlib.suppress(OSError):
                why_file.unlink()
        if not isinstance(e, FileNotFoundError) or path.exists():
            log.warning("label shard %s is unreadable (%s) and could not be moved aside (%s); it is skipped",
                        path, reason, error_line(e))
        return None
    log.warning("label shard data/%s is unreadable (%s): moved aside to %s/%s", path.name, reason, QUARANTINE, target.name)
    return target


def quarantined(root: Path) -> list[Quarantined]:
    """The shards moved aside in the label folder ``root``, by name, with why."""
    folder = Path(root) / QUARANTINE
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.glob("*.parquet")):
        try:
            reason = (folder / f"{p.name}.why").read_text().strip()
        except OSError:
            reason = "reason not recorded"
        out.append(Quarantined(p.name, reason))
    return out


def readable_shards(data_dir: Path, full: bool = False) -> tuple[list[Path], list[tuple[str, str]]]:
    """(the label shards of ``data_dir`` that read, sorted; [(name, why)] of those moved aside now).
    ``full``: read every row group too (:func:`table_problem`), not only the footer."""
    good, moved = [], []
    for p in sorted(Path(data_dir).glob("*.parquet")):
        if p.name.startswith("."):
            continue
        try:
            why = table_problem(p) if full else shard_problem(p)
        except FileNotFoundError:
            continue
        if why is None:
            good.append(p)
        else:
            quarantine(p, why)
            moved.append((p.name, why))
    return good, moved
