"""Replay: a share of the checkpoint's own training mix beside the new labels, so the old domains are not
forgotten while the model learns the new one.

A checkpoint records the SPECs it was trained on (``meta["data"]``). Their training sides (``SPEC@train``,
the split training used, so held-out pairs stay held out) that can be read on this machine form the replay
pool; those that cannot (a dataset on another machine) are named and left out. Generated pairs (``synth:``)
can always be made again. A fixed number of pool pairs is drawn by seed, the same number from each source,
so a large set does not drown a small one, and the decoded-pair cache serves them after their first read.

:class:`Mixture` is what training reads: the target pairs repeated so that they make ``1 - share`` of the
items, then the replay pairs.
"""
from __future__ import annotations

import math

import numpy as np

from ..data import ConcatSource, Pair, Source, Subset, parse_spec
from ..data.pair_cache import cached
from ..errors import UserError


def _training_sides(specs: list[str], exclude: set[str] | None) -> tuple[list[Source], list[str]]:
    """The readable training sides (``SPEC@train``) of ``specs``, and notes naming those that cannot be read."""
    parts, notes = [], []
    for spec in specs:
        if exclude and spec in exclude:
            continue
        try:
            src = parse_spec(f"{spec}@train")
            if len(src) == 0:
                raise UserError("no pairs")
        except UserError as e:
            notes.append(f"replay: left out '{spec}' ({str(e).rstrip('.')})")
            continue
        parts.append(src)
    return parts, notes


def _draw(n: int, each: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(each, n), replace=False)).tolist()


def replay_pool(specs: list[str], pairs: int, seed: int = 0, exclude: set[str] | None = None) -> tuple[Source | None, list[str]]:
    """Up to ``pairs`` pairs drawn evenly from the training sides of ``specs``; returns (source or None,
    notes saying what was used and what could not be read). ``exclude``: SPECs not to replay (the target's)."""
    parts, notes = _training_sides(specs, exclude)
    if not parts or pairs <= 0:
        return None, notes + ([] if pairs <= 0 else ["replay: none of the checkpoint's training data can be read here"])
    each = max(1, pairs // len(parts))
    drawn = []
    for k, src in enumerate(parts):
        idx = _draw(len(src), each, seed * 1000 + k)
        drawn.append(cached(Subset(src, idx, f"{src.spec}#replay")))
        notes.append(f"replay: {len(idx)} pairs of {src.spec}")
    return (drawn[0] if len(drawn) == 1 else ConcatSource(drawn)), notes


def calibration_pool(specs: list[str], pairs: int, replay_pairs: int, seed: int = 0,
                     exclude: set[str] | None = None) -> Source | None:
    """``pairs`` pairs of each old domain's training side that the replay pool (same ``replay_pairs``, ``seed``)
    did not draw: where the adapted model's threshold for the old domains (``generic``) is fitted again, since
    adaptation shifts the probabilities (measured: the old domains' AUC stays, F1 at the old threshold drops)."""
    parts, _ = _training_sides(specs, exclude)
    if not parts or pairs <= 0:
        return None
    each = max(1, replay_pairs // len(parts)) if replay_pairs > 0 else 0
    drawn = []
    for k, src in enumerate(parts):
        taken = set(_draw(len(src), each, seed * 1000 + k)) if each else set()
        free = [i for i in range(len(src)) if i not in taken]
        pick = [free[j] for j in _draw(len(free), pairs, seed * 1000 + k + 500)] if free else []
        if pick:
            drawn.append(cached(Subset(src, pick, f"{src.spec}#calibration")))
    return (drawn[0] if len(drawn) == 1 else ConcatSource(drawn)) if drawn else None


def old_domains(specs: list[str], pairs: int, exclude: set[str] | None = None) -> dict[str, Source]:
    """The validation sides (``SPEC@val``, never trained on) of the checkpoint's readable training SPECs, the first
    ``pairs`` of each: where forgetting is measured."""
    out = {}
    for spec in specs:
        if (exclude and spec in exclude) or pairs <= 0:
            continue
        try:
            src = parse_spec(f"{spec}@val")
        except UserError:
            continue
        if len(src):
            out[spec] = cached(Subset(src, list(range(min(pairs, len(src)))), f"{src.spec}#first{pairs}"))
    return out


class Mixture(Source):
    """The target pairs repeated to make ``1 - share`` of the items, then the replay pairs (``share`` of them)."""

    def __init__(self, target: Source, replay: Source | None, share: float):
        if not 0.0 <= share < 1.0:
            raise UserError(f"the replay share must lie in [0, 1), got {share}.")
        self.target, self.replay = target, replay if share > 0 else None
        n_replay = len(self.replay) if self.replay is not None else 0
        # target items t * repeats against n_replay replay items: t * r / (t * r + n) = 1 - share
        self.repeats = max(1, math.ceil(n_replay * (1 - share) / (share * len(target)))) if n_replay else 1
        self.n_target = len(target) * self.repeats
        self.spec = f"mix({target.spec}" + (f" + replay {share:g})" if n_replay else ")")
        self.names = [target.names[i % len(target)] for i in range(self.n_target)] + (list(self.replay.names) if n_replay else [])

    @property
    def replay_share(self) -> float:
        return 1.0 - self.n_target / len(self)

    def key(self, i: int) -> str:
        i = self._index(i)
        return self.target.key(i % len(self.target)) if i < self.n_target else self.replay.key(i - self.n_target)

    def _load(self, i: int) -> Pair:
        return self.target[i % len(self.target)] if i < self.n_target else self.replay[i - self.n_target]
