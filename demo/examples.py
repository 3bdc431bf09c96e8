"""The example gallery: synthetic pairs from ``anodfdnet.data.synth.gallery``, written once to a cache folder.

The folder is ``$ANODFDNET_CACHE/examples`` (default ``~/.cache/anodfdnet/examples``), one sub-folder
per gallery version (``v1-n6-s384-seed2024``), holding ``NAME/hist.png, cur.png, cur_gt.png`` as
``synth.write_pairs`` lays them out. The first start generates it (a second or two) into a temporary
folder and renames it into place, so a crash or a second process never leaves a half-written
gallery; later starts only list it. Nothing is read from outside the project.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from anodfdnet.data import synth
from anodfdnet.cache import cache_root

VERSION = 1
N, SIZE, SEED = 6, 384, 2024


def example_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / "examples" / f"v{VERSION}-n{N}-s{SIZE}-seed{SEED}"


def _complete(folder: Path) -> bool:
    dirs = [d for d in folder.iterdir() if d.is_dir()] if folder.is_dir() else []
    return len(dirs) == N and all((d / "hist.png").is_file() and (d / "cur.png").is_file() for d in dirs)


def ensure_examples(root: Path | None = None) -> Path:
    """The gallery folder, generated on first use."""
    folder = example_dir(root)
    if _complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".examples-", dir=folder.parent))
    try:
        synth.write_pairs(synth.gallery(n=N, size=SIZE, seed=SEED), tmp)
        if folder.exists():  # an incomplete leftover
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process won the race with a complete copy
            if not _complete(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def example_pairs(root: Path | None = None) -> list[tuple[str, str, str]]:
    """(name, history path, current path) for each example, in gallery order."""
    folder = ensure_examples(root)
    return [(d.name, str(d / "hist.png"), str(d / "cur.png")) for d in sorted(p for p in folder.iterdir() if p.is_dir())]


def pretty(name: str) -> str:
    """'example-03-displaced' -> 'displaced'."""
    parts = name.split("-", 2)
    return parts[2].replace("-", " ") if len(parts) == 3 else name
