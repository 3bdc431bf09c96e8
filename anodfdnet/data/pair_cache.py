"""Decoded pairs on disk, so training decodes each JPEG (or renders each synthetic pair) once, not every step.

``cached(source)`` wraps any source: the first read of a pair stores its decoded history, current and mask
as one raw ``.npy`` array (3 x H x W x 3: history, current, mask in every channel; 2 x ... when unlabelled) under ``$ANODFDNET_CACHE/pairs/`` (written to a temporary name and renamed, so
an interrupted write never leaves a torn file); later reads load that file (about a millisecond for a
640x640 pair, against several for a JPEG decode plus DeepPCB's mask recipe, or ~25 ms for a synthetic
pair). Splits and concatenations keep their structure and share the entries of the sources under them.

An entry is named by the leaf source's SPEC and the pair's key (or its ``cache_key(i)`` where the source has
one: the label dataset names an item by the immutable rows it is made of). The cache does not notice files edited
in place under the same name: delete ``$ANODFDNET_CACHE/pairs`` (or train with ``--no-cache``) after
changing a dataset's files.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..cache import cache_root
from .source import ConcatSource, Pair, Source, Subset

FORMAT = "1"  # bump when the stored layout changes


def cache_dir() -> Path:
    return cache_root() / "pairs"


class CachedSource(Source):
    """A leaf source whose decoded pairs are kept on disk."""

    def __init__(self, source: Source, root: str | os.PathLike | None = None):
        self.source = source
        self.spec = source.spec
        self.names = source.names
        self.root = Path(root) if root is not None else cache_dir()

    def key(self, i: int) -> str:
        return self.source.key(i)

    def path(self, i: int) -> Path:
        # A source whose items share a key (the label dataset: one key per pair, one item per annotator) or
        # whose item under one name can change (a consensus gaining labels) names each item's content itself.
        ident = self.source.cache_key(i) if hasattr(self.source, "cache_key") else self.source.key(i)
        digest = hashlib.sha1(f"{FORMAT}\n{self.spec}\n{ident}".encode()).hexdigest()
        return self.root / digest[:2] / f"{digest}.npy"

    def _load(self, i: int) -> Pair:
        f = self.path(i)
        if f.exists():
            try:
                a = np.load(f, allow_pickle=False)  # contiguous planes, so the views below copy nothing
                if a.ndim == 4 and a.dtype == np.uint8 and a.shape[0] in (2, 3) and a.shape[3] == 3:
                    mask = a[2, :, :, 0] > 0 if a.shape[0] == 3 else None
                    return Pair(name=self.names[i], history=a[0], current=a[1], mask=mask)
            except (OSError, ValueError):
                pass  # an unreadable entry (torn by a full disk, another layout): decode again, rewrite it
        pair = self.source[i]
        parts = [pair.history, pair.current] + ([np.repeat(pair.mask[..., None], 3, 2).astype(np.uint8)] if pair.mask is not None else [])
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f"{f.stem}.{os.getpid()}.tmp.npy")
        try:
            np.save(tmp, np.stack(parts))
            os.replace(tmp, f)
        except OSError:  # a read-only or full cache only costs speed
            tmp.unlink(missing_ok=True)
        return pair


def cached(source: Source, root: str | os.PathLike | None = None) -> Source:
    """``source`` with its leaves read through the decoded-pair cache (splits and concatenations kept)."""
    if isinstance(source, CachedSource):
        return source
    if isinstance(source, Subset):
        return Subset(cached(source.source, root), source.indices, source.spec)
    if isinstance(source, ConcatSource):
        return ConcatSource([cached(s, root) for s in source.sources])
    return CachedSource(source, root)
