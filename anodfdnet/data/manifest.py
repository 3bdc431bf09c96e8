"""``manifest:FILE.csv`` or ``manifest:FILE.parquet``: a table of pairs, one row each, columns ``id``,
``history``, ``current`` (and optionally ``mask``).

Paths are local (relative ones are taken from the manifest's own folder) or any fsspec URL
(``s3://``, ``gs://``, ``http://``, ...) whose filesystem library is installed. Lines are numbered as a person
sees them: the CSV header is line 1, the first pair line 2; a Parquet file's first row is row 1.

A bad line never stops the others. A line with an empty field, a repeated id or an unknown URL scheme is
left out when the manifest is read and kept in ``bad`` as ``(line, sentence)``; a line whose image cannot be
read raises a :class:`~anodfdnet.errors.UserError` that names the line when the pair is loaded, so a batch
job (``anodfdnet.inspect``) reports it and goes on.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..errors import UserError
from .images import ImageSource
from .source import Pair, PairFiles, Source, load_pair
from .spec import register_source

COLUMNS = ("id", "history", "current")
_EXTRA = "\0extra"
MAX_FILE_BYTES = 200 * 1024 * 1024  # an image read through fsspec larger than this is refused before decoding


def is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


class ManifestSource(Source):
    """The pairs of a manifest file; ``bad`` holds the lines left out, ``lines[i]`` pair i's line number."""

    def __init__(self, path: str, spec: str):
        self.spec = spec
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise UserError(f"data spec '{spec}': the manifest '{self.path}' does not exist.")
        self._base = os.path.abspath(self.path.parent)  # relative paths in it are taken from its own folder
        rows = _read_rows(self.path, spec)
        self.names: list[str] = []
        self.lines: list[int] = []
        self.files: list[tuple[str, str, str | None]] = []
        self.bad: list[tuple[int, str]] = []
        seen: dict[str, int] = {}
        for line, row in rows:
            try:
                if row.get(_EXTRA):
                    raise ValueError("it has more fields than the header (a comma inside a path must be quoted)")
                pid = _field(row, "id")
                files = tuple(self._locate(_field(row, c)) for c in ("history", "current"))
                mask = (row.get("mask") or "").strip()
                if pid in seen:
                    raise ValueError(f"the id '{pid[:80]}' is already used on line {seen[pid]}")
            except ValueError as e:
                self.bad.append((line, f"{self.where(line)}: {e}; line skipped."))
                continue
            seen[pid] = line
            self.names.append(pid)
            self.lines.append(line)
            self.files.append((files[0], files[1], self._locate(mask) if mask else None))
        if not self.names and not self.bad:
            raise UserError(f"data spec '{spec}': the manifest '{self.path}' lists no pairs.")

    def where(self, line: int) -> str:
        kind = "row" if self.path.suffix.lower() == ".parquet" else "line"
        return f"{self.path.name} {kind} {line}"

    def _locate(self, value: str) -> str:
        if is_url(value):
            protocol = value.split("://", 1)[0]
            try:
                import fsspec

                fsspec.get_filesystem_class(protocol)
            except (ImportError, ValueError) as e:
                raise ValueError(f"'{value[:120]}' needs a filesystem for '{protocol}://' that is not installed ({e})") from None
            return value
        if value.startswith("file://"):
            value = value[len("file://"):]
        value = os.path.expanduser(value) if value.startswith("~") else value
        # absolute, so the same file after a change of folder; os.path, as pathlib took 80 % of a large manifest's parse
        return value if os.path.isabs(value) else os.path.join(self._base, value)

    def _load(self, i: int) -> Pair:
        return self.detached(i).load()

    def detached(self, i: int) -> ManifestPair:
        i = self._index(i)
        hist, cur, mask = self.files[i]  # absolute paths or URLs (_locate)
        return ManifestPair(self.names[i], hist, cur, mask, f"{self.where(self.lines[i])} (id '{self.names[i][:80]}')")


@dataclass(frozen=True)
class ManifestPair(PairFiles):
    """A manifest's pair: its files may be fsspec URLs, and an error names the manifest's line."""

    where: str = ""

    def load(self) -> Pair:
        try:
            return load_pair(self.name, _image(self.history), _image(self.current), _image(self.mask) if self.mask else None)
        except UserError as e:
            raise UserError(f"{self.where}: {e}") from None


def _field(row: dict, name: str) -> str:
    value = row.get(name)
    value = "" if value is None else str(value).strip()
    if not value:
        raise ValueError(f"the '{name}' field is empty")
    return value


def _read_rows(path: Path, spec: str):
    """(line number, row dict) of each row, read as it goes (a million-line manifest is never all in memory as text
    and row dicts at once); a file without the three columns is a UserError."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.ParquetFile(path)
            _check_columns(table.schema_arrow.names, path, spec)
            number = 0
            for batch in table.iter_batches():
                for row in batch.to_pylist():
                    number += 1
                    yield number, row
        except UserError:
            raise
        except Exception as e:  # pyarrow raises several types for a file that is not Parquet
            raise UserError(f"data spec '{spec}': cannot read the manifest '{path}' as Parquet ({str(e)[:200]}).") from None
        return
    if suffix != ".csv":
        raise UserError(f"data spec '{spec}': a manifest is a .csv or .parquet file, got '{path.name}'.")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            _check_columns(reader.fieldnames or [], path, spec)
            for row in reader:
                if row.pop(None, None):  # a line with more fields than the header
                    row[_EXTRA] = True
                yield reader.line_num, row
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"data spec '{spec}': cannot read the manifest '{path}' ({e}).") from None


def _check_columns(names, path: Path, spec: str) -> None:
    names = [str(n).strip() for n in names]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise UserError(f"data spec '{spec}': the manifest '{path}' has no column {', '.join(missing)} "
                        f"(it needs {', '.join(COLUMNS)}; it has {', '.join(names[:10]) or 'none'}).")


def _image(path: str) -> ImageSource:
    """A local path as it is; an fsspec URL read into memory (size checked first) as a PIL image."""
    if not is_url(path):
        return path
    import fsspec

    try:
        with fsspec.open(path, "rb") as f:
            size = getattr(f, "size", None)
            if size is not None and size > MAX_FILE_BYTES:
                raise UserError(f"cannot read image '{path}': {size / 1e6:.0f} MB is over the {MAX_FILE_BYTES // 2**20} MB limit.")
            data = f.read(MAX_FILE_BYTES + 1)
    except UserError:
        raise
    except Exception as e:  # fsspec backends raise their own error types
        raise UserError(f"cannot read image '{path}': {str(e)[:200] or type(e).__name__}.") from None
    if len(data) > MAX_FILE_BYTES:
        raise UserError(f"cannot read image '{path}': it is over the {MAX_FILE_BYTES // 2**20} MB limit.")
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
        return im
    except Exception as e:
        raise UserError(f"cannot read image '{path}': {str(e)[:200] or type(e).__name__}.") from None


def write_manifest(path: str | Path, rows: list[dict]) -> Path:
    """Write rows (id, history, current) as a manifest CSV, atomically (readers never see half a file)."""
    import uuid

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS))
        w.writeheader()
        for r in rows:
            w.writerow({c: r[c] for c in COLUMNS})
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


register_source("manifest", lambda arg, spec: ManifestSource(arg, spec),
                "manifest:FILE.csv|parquet  a table with columns id, history, current (local paths, relative to the file, "
                "or fsspec URLs); bad lines are reported and skipped")
