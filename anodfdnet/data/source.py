"""Pairs and the sources that hold them.

A :class:`Pair` is one history/current pair in the project's conventions (``load_pair`` reads one from
files, PIL images or arrays). A :class:`Source` is a lazy, sequence-like collection of pairs named by a
SPEC (``anodfdnet.data.spec``): constructing one only lists files; images are read in ``__getitem__``.
:class:`Subset` and :class:`ConcatSource` are views of sources, and :func:`split` is the deterministic
train/validation split by each pair's key.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from ..errors import UserError
from .images import ImageSource, load_mask, load_rgb, resize_rgb


@dataclass
class Pair:
    """One history/current pair. ``mask`` is in current-image coordinates, or None when unlabelled."""

    name: str
    history: np.ndarray  # uint8 HxWx3, same size as current
    current: np.ndarray  # uint8 HxWx3
    mask: np.ndarray | None  # bool HxW


def load_pair(
    name: str, history: ImageSource, current: ImageSource, mask: ImageSource | None = None
) -> Pair:
    """Read a pair from paths (or PIL images / arrays) and bring it to the pair conventions.

    A history whose size differs from the current is resized to the current's size; a mask whose
    size differs from the current is a ``UserError`` naming the mask.
    """
    cur = load_rgb(current)
    hist = load_rgb(history)
    if hist.shape[:2] != cur.shape[:2]:
        hist = resize_rgb(hist, cur.shape[:2])
    m = None
    if mask is not None:
        m = load_mask(mask)
        if m.shape != cur.shape[:2]:
            what = f"mask '{mask}'" if isinstance(mask, (str, os.PathLike)) else f"the mask of pair '{name}'"
            raise UserError(
                f"{what} is {m.shape[1]}x{m.shape[0]} but its current image is "
                f"{cur.shape[1]}x{cur.shape[0]} (width x height); a mask must match the current image."
            )
    return Pair(name=name, history=hist, current=cur, mask=m)


@dataclass(frozen=True)
class PairFiles:
    """Pair i of a file-backed source, loadable without the source: what ``Source.detached`` gives a worker process
    (on this machine or another) so that it need not list or parse a whole archive to read one pair. Paths are
    absolute (or URLs, for sources that read them)."""

    name: str
    history: str
    current: str
    mask: str | None = None

    def load(self) -> Pair:
        return load_pair(self.name, self.history, self.current, self.mask)


class Source:
    """A lazy, sequence-like collection of pairs named by a SPEC.

    Subclasses set ``spec`` and ``names`` in ``__init__`` and implement ``_load(i) -> Pair`` for a
    non-negative index (or override ``__getitem__`` themselves). ``key(i)`` is the pair's stable
    identity used by :func:`split`; it is the name unless a subclass knows better.
    """

    spec: str
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> Pair:
        return self._load(self._index(i))

    def __iter__(self) -> Iterator[Pair]:
        for i in range(len(self)):
            yield self[i]

    def key(self, i: int) -> str:
        return self.names[self._index(i)]

    def _load(self, i: int) -> Pair:
        raise NotImplementedError

    def detached(self, i: int) -> PairFiles | None:
        """Pair i as a small picklable loader that needs no source, or None where pairs are not plain files."""
        return None

    def _index(self, i: int) -> int:
        n = len(self)
        i = int(i)
        if not -n <= i < n:
            raise IndexError(f"pair index {i} out of range for {n} pairs in '{self.spec}'")
        return i % n

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, {len(self)} pairs)"


class Subset(Source):
    """A view of some pairs of another source, in the given order."""

    def __init__(self, source: Source, indices: Sequence[int], spec: str):
        self.source = source
        self.indices = [int(i) for i in indices]
        self.spec = spec
        self.names = [source.names[i] for i in self.indices]

    def key(self, i: int) -> str:
        return self.source.key(self.indices[self._index(i)])

    def _load(self, i: int) -> Pair:
        return self.source[self.indices[i]]

    def detached(self, i: int) -> PairFiles | None:
        return self.source.detached(self.indices[self._index(i)])


class ConcatSource(Source):
    """Several sources one after another (several ``--data`` SPECs). Names and keys are the parts'."""

    def __init__(self, sources: Sequence[Source]):
        self.sources = list(sources)
        if not self.sources:
            raise ValueError("ConcatSource needs at least one source")
        self.spec = " + ".join(s.spec for s in self.sources)
        self.names = [n for s in self.sources for n in s.names]
        self._where = [(j, i) for j, s in enumerate(self.sources) for i in range(len(s))]

    def key(self, i: int) -> str:
        j, k = self._where[self._index(i)]
        return self.sources[j].key(k)

    def _load(self, i: int) -> Pair:
        j, k = self._where[i]
        return self.sources[j][k]

    def detached(self, i: int) -> PairFiles | None:
        j, k = self._where[self._index(i)]
        return self.sources[j].detached(k)


def _unit_hash(key: str, seed: int) -> float:
    digest = hashlib.blake2b(f"{seed}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def split(source: Source, val_fraction: float = 0.2, seed: int = 0) -> tuple[Subset, Subset]:
    """Split a source into (train, val) views by hashing each pair's ``key`` with ``seed``.

    A pair lands on the same side whatever the order or size of the source it is in. When the hash
    would leave a side empty and there are at least two pairs, the pair nearest the cut moves over.
    """
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"the validation fraction must lie strictly between 0 and 1, got {val_fraction}.")
    u = [_unit_hash(source.key(i), seed) for i in range(len(source))]
    val = [i for i in range(len(u)) if u[i] < val_fraction]
    train = [i for i in range(len(u)) if u[i] >= val_fraction]
    if len(u) >= 2 and not val:
        moved = min(train, key=lambda i: u[i])
        train.remove(moved)
        val = [moved]
    elif len(u) >= 2 and not train:
        moved = max(val, key=lambda i: u[i])
        val.remove(moved)
        train = [moved]
    params = "" if (val_fraction, seed) == (0.2, 0) else f"(val_fraction={val_fraction!r},seed={seed})"
    return (
        Subset(source, train, f"{source.spec}@train{params}"),
        Subset(source, val, f"{source.spec}@val{params}"),
    )
