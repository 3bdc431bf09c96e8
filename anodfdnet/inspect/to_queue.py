"""The top pairs of a run into a manifest the Label tab's queue reads (``ANODFDNET_QUEUE=manifest:FILE``).

``add_to_queue(RUN, FILE, top=N, rank=...)`` takes the run's N highest-scoring pairs (``rank="score"``: highest
probability first) or the N the model is least sure about (``rank="uncertainty"``: most pixels near the
threshold, ``anodfdnet.uncertainty``), writes each pair's history and current as PNGs beside FILE
(``FILE_pairs/RUNNAME-FILEID/hist.png``, ``cur.png``: the queue then needs neither the archive nor the run) and
adds a line ``RUNNAME/ID`` per pair to FILE, rewritten atomically; pairs already in it are left as they are.
The Label queue notices the changed file and serves the new pairs (``annotate/queue.py``). Used by
``inspect --to-queue`` and ``python -m annotate queue add``.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from PIL import Image

from ..data import parse_spec
from ..errors import UserError
from .results import ranked


@contextlib.contextmanager
def _in_folder(folder: str | None):
    """Run in the folder the inspection ran in, so the run's relative SPEC paths mean the same files."""
    old = os.getcwd()
    if folder and os.path.isdir(folder):
        os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def add_to_queue(run: str | Path, manifest: str | Path, top: int = 20, rank: str = "score") -> int:
    """Add the run's top pairs to the manifest; returns how many were new."""
    from ..data.manifest import ManifestSource, write_manifest

    run, manifest = Path(run).resolve(), Path(manifest).resolve()
    if top < 1:
        raise UserError(f"--top must be 1 or more, got {top}.")
    if manifest.suffix.lower() != ".csv":
        raise UserError(f"the queue manifest must be a .csv file, got '{manifest.name}'.")
    try:
        info = json.loads((run / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise UserError(f"'{run}' is not an inspection run (no readable run.json).") from None
    rows = ranked(run, top, rank)
    if not rows:
        raise UserError(f"the run '{run}' has no results yet.")
    existing: list[dict] = []
    if manifest.exists():
        old = ManifestSource(str(manifest), f"manifest:{manifest}")
        existing = [{"id": n, "history": h, "current": c} for n, (h, c, _) in zip(old.names, old.files)]
    have = {r["id"] for r in existing}
    chosen = [r for r in rows if f"{run.name}/{r['id']}" not in have]
    folder = manifest.with_name(f"{manifest.stem}_pairs")
    new = []
    with _in_folder(info.get("cwd")):
        source = parse_spec(info["data"])
        for r in chosen:
            i = int(r["index"])
            if not (0 <= i < len(source) and source.names[i] == r["id"]):
                if r["id"] not in source.names:
                    raise UserError(f"pair '{r['id']}' of the run is no longer in '{info['data']}'.")
                i = source.names.index(r["id"])
            pair = source[i]
            d = folder / f"{run.name}-{r['file_id']}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pair.history).save(d / "hist.png")
            Image.fromarray(pair.current).save(d / "cur.png")
            new.append({"id": f"{run.name}/{r['id']}", "history": str(d / "hist.png"), "current": str(d / "cur.png")})
    if new:
        write_manifest(manifest, existing + new)
    return len(new)
