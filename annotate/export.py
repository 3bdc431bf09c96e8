"""``python -m annotate export --format ab OUT``: a policy's training pairs as an ``ab:`` folder.

The pairs are exactly what training reads with the same policy (``hf:DIR?policy=...``, the one reader in
``anodfdnet/data/labels.py``): ``OUT/A/NAME.png`` the history, ``OUT/B/NAME.png`` the current,
``OUT/label/NAME.png`` the mask {0, 255}, so any change-detection tool (and ``ab:OUT``) can use them. NAME is
the source pair's name where the row records one (a queue's ``SPEC#NAME``: ``NAME``, with any character other
than letters, digits, ``.``, ``_`` and ``-`` replaced by ``_``; another pair of the same name gets ``-`` and
its hash's first 8 digits), else the pair's content hash; a pair exported again (the ``latest`` policy keeps
each annotator's answer) gets ``-2``, ``-3``, ...
Files are written under temporary names and renamed; OUT must be empty or absent.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from anodfdnet.data import parse_spec
from anodfdnet.data.labels import labels_spec
from anodfdnet.errors import UserError

from .shards import png_bytes


def export_ab(labels: str | os.PathLike, out: str | os.PathLike, policy: str = "latest", min_agreement: float | None = None,
              k: int | None = None):
    """Write the policy's pairs of the label folder ``labels`` to ``out``; returns the ``hf:`` source read (its
    ``selection`` says what the policy kept, its ``quarantined`` which unreadable shards were moved aside)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"'{out}' exists and is not an empty folder; export into a new one.")
    source = parse_spec(labels_spec(str(labels), policy, min_agreement, k))
    for sub in ("A", "B", "label"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for i in range(len(source)):
        pair = source[i]
        name = file_name(source.recorded_source(i), source.key(i), used)
        for sub, image in (("A", pair.history), ("B", pair.current), ("label", pair.mask)):
            final = out / sub / f"{name}.png"
            tmp = final.with_name(f".{final.name}.tmp")
            tmp.write_bytes(png_bytes(image))
            os.replace(tmp, final)
    return source


def file_name(recorded: str, content_hash: str, used: set[str]) -> str:
    """A file stem for a pair: the source pair's name recorded in its row (``SPEC#NAME``), else its hash;
    never a path (no separators, no leading dot), unique within ``used`` (which it extends)."""
    _, hash_mark, pair_name = str(recorded or "").rpartition("#")
    name = re.sub(r"[^A-Za-z0-9._-]", "_", pair_name)[:96].lstrip(".") if hash_mark else ""
    name = name or content_hash
    if name in used and name != content_hash:
        name = f"{name}-{content_hash[:8]}"
    base, n = name, 2
    while name in used:  # the same pair again (the latest policy keeps each annotator's answer): -2, -3, ...
        name, n = f"{base}-{n}", n + 1
    used.add(name)
    return name
