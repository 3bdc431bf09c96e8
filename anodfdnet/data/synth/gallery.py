"""Examples for the app: a varied gallery of generated pairs, and writing pairs in the ``pairs:ROOT`` layout."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from PIL import Image

from ...errors import UserError
from ..images import save_mask_png
from ..source import Pair
from .pairs import _derive, generate_pair

GALLERY_ORDER = ("foreign_body", "missing", "displaced", "oil_leak", "scratch", "none")


def gallery(n: int = 6, size: int = 384, seed: int = 2024) -> list[Pair]:
    """A varied set of n pairs, one of each kind in turn (alternating easy and hard viewpoints)."""
    pairs = []
    for k in range(n):
        kind = GALLERY_ORDER[k % len(GALLERY_ORDER)]
        p = generate_pair(_derive(seed, k), size, "hard" if k % 2 else "easy", kind)
        p.name = f"example-{k + 1:02d}-{kind.replace('_', '-')}"
        pairs.append(p)
    return pairs


def write_pairs(pairs: Iterable[Pair], folder: str | os.PathLike) -> Path:
    """Write pairs in the ``pairs:ROOT`` layout: ``folder/NAME/hist.png, cur.png, cur_gt.png``.

    ``cur_gt.png`` ({0, 255}) is written only for pairs with a mask. Returns the folder.
    """
    root = Path(folder)
    for p in pairs:
        if not p.name or p.name != Path(p.name).name or p.name.startswith("."):
            raise ValueError(f"a pair name must be a plain folder name, got {p.name!r}")
        d = root / p.name
        try:
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(p.history).save(d / "hist.png")
            Image.fromarray(p.current).save(d / "cur.png")
        except OSError as e:
            raise UserError(f"cannot write the pair '{d}': {e.strerror or e}.") from None
        if p.mask is not None:
            save_mask_png(d / "cur_gt.png", p.mask)
    return root
