"""``normal:SPEC``: the pairs of SPEC made free of anomalies, for the unsupervised objective (``train --objective normal``).

- generated pairs (``synth:``): the same scenes and viewpoint/photometric nuisance, with the anomaly off;
- a pair whose mask is empty or absent (an ``ab:`` folder with empty labels, or none): the pair as it is;
- a pair with an anomaly (every DeepPCB pair, for instance): its history, the known-good image, against an
  altered copy of itself (a small random shift, rotation and scale, and another exposure:
  ``augment.misregister`` and ``augment.photometric``, drawn from the pair's key, so the same pairs every time);
  for DeepPCB this is each defect-free template against an altered copy.

Every pair's mask is empty. Keys are the inner source's, so ``normal:SPEC@train`` holds the training side of
``SPEC@train`` (the decoded-pair cache tells the two apart by the SPEC).
"""
from __future__ import annotations

import hashlib

import numpy as np

from .augment import misregister, photometric
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
        self.inner, self.spec, self.names = inner, spec, inner.names

    def key(self, i: int) -> str:
        return self.inner.key(i)

    def _load(self, i: int) -> Pair:
        if isinstance(self.inner, SynthSource):
            s = self.inner
            pair = generate_pair(_derive(s.seed, i), s.size, s.hardness, anomaly="none")
            pair.name = s.names[i]
        else:
            pair = self.inner[i]
            if pair.mask is not None and pair.mask.any():  # the history is known good: against an altered copy
                rng = _rng(PREFIX + self.key(i))
                pair = Pair(pair.name, pair.history, photometric(misregister(pair.history, rng), rng), None)
        pair.mask = np.zeros(pair.current.shape[:2], bool)
        return pair


def normal_spec(spec: str) -> str:
    """``spec`` as a ``normal:`` SPEC (unchanged when it is one already)."""
    spec = str(spec).strip()
    return spec if spec.startswith(PREFIX) else PREFIX + spec


register_source("normal", lambda arg, spec: NormalSource(parse_spec(arg), spec),
                "normal:SPEC      SPEC's pairs free of anomalies: generated ones with the anomaly off, pairs with an empty "
                "or no mask as they are, and for a pair with an anomaly its history against an altered copy of itself")
