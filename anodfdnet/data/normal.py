"""``normal:SPEC``: the pairs of SPEC without anomalies, for the unsupervised objective (``train --objective normal``).

What "without anomalies" means depends on the source:

- generated pairs (``synth:``): the same scenes and viewpoint/photometric nuisance, with the anomaly off;
- DeepPCB (``deeppcb:``): each defect-free template against an altered copy of itself (a small random
  shift, rotation and scale, and another exposure: ``augment.misregister`` and ``augment.photometric``,
  drawn from the pair's key, so the same pairs every time);
- any other source (``ab:``, ``pairs:``, ``hf:``, ...): its pairs whose mask is empty or absent; an ``ab:``
  folder reads only its label files to decide, the others read each pair once when the SPEC is opened.

Every pair's mask is empty. Keys are the inner source's, so ``normal:SPEC@train`` holds the training side of
``SPEC@train`` (the decoded-pair cache tells the two apart by the SPEC).
"""
from __future__ import annotations

import hashlib

import numpy as np

from ..errors import UserError
from .augment import misregister, photometric
from .deeppcb import DeepPCBSource
from .folders import ABSource
from .images import load_mask, load_rgb
from .source import Pair, Source
from .spec import parse_spec, register_source
from .synth.pairs import _derive, generate_pair
from .synth.source import SynthSource

PREFIX = "normal:"


def _rng(key: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "little"))


class NormalSource(Source):
    """The pairs of ``inner`` without anomalies (see the module docstring)."""

    def __init__(self, inner: Source, spec: str):
        self.inner, self.spec = inner, spec
        if isinstance(inner, (SynthSource, DeepPCBSource)):
            self.kind, self.indices = ("synth" if isinstance(inner, SynthSource) else "template"), list(range(len(inner)))
        else:
            self.kind = "empty-mask"
            self.indices = [i for i in range(len(inner)) if self._empty(i)]
        self.names = [inner.names[i] for i in self.indices]
        if not self.names:
            raise UserError(f"data spec '{spec}': '{inner.spec}' has no pair without an anomaly (every mask is non-empty).")

    def _empty(self, i: int) -> bool:
        inner = self.inner
        if isinstance(inner, ABSource):
            if inner.labels is None:
                return True
            return not load_mask(inner.labels[inner.names[i]]).any()
        mask = inner[i].mask
        return mask is None or not mask.any()

    def key(self, i: int) -> str:
        return self.inner.key(self.indices[self._index(i)])

    def _load(self, i: int) -> Pair:
        j = self.indices[i]
        if self.kind == "synth":
            s = self.inner
            pair = generate_pair(_derive(s.seed, j), s.size, s.hardness, anomaly="none")
            pair.name = s.names[j]
        elif self.kind == "template":
            hist_path = self.inner.files[j][0]
            hist = load_rgb(hist_path)
            rng = _rng(PREFIX + self.key(i))
            cur = photometric(misregister(hist, rng), rng)
            pair = Pair(self.inner.names[j], hist, cur, None)
        else:
            pair = self.inner[j]
        pair.mask = np.zeros(pair.current.shape[:2], bool)
        return pair


def normal_spec(spec: str) -> str:
    """``spec`` as a ``normal:`` SPEC (unchanged when it is one already)."""
    spec = str(spec).strip()
    return spec if spec.startswith(PREFIX) else PREFIX + spec


register_source("normal", lambda arg, spec: NormalSource(parse_spec(arg), spec),
                "normal:SPEC      SPEC's pairs without anomalies: generated ones with the anomaly off, DeepPCB templates "
                "against an altered copy of themselves, other sources' pairs with an empty or no mask")
