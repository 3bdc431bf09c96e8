"""``python -m annotate export --format ab OUT``: a policy's training pairs as an ``ab:`` folder.

The pairs are exactly what training reads with the same policy (``hf:DIR?policy=...``, the one reader in
``anodfdnet/data/labels.py``): ``OUT/A/NAME.png`` the history, ``OUT/B/NAME.png`` the current,
``OUT/label/NAME.png`` the mask {0, 255}, so any change-detection tool (and ``ab:OUT``) can use them.
Files are written under temporary names and renamed; OUT must be empty or absent.
"""
from __future__ import annotations

import os
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
    for i in range(len(source)):
        pair = source[i]
        for sub, image in (("A", pair.history), ("B", pair.current), ("label", pair.mask)):
            final = out / sub / f"{pair.name}.png"
            tmp = final.with_name(f".{final.name}.tmp")
            tmp.write_bytes(png_bytes(image))
            os.replace(tmp, final)
    return source
