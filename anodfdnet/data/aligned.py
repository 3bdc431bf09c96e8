"""Training pairs aligned the way they are served: another source's pairs with the history brought onto the
current view by ``anodfdnet.align`` (``train --align MODE``), so a model trained on aligned pairs sees aligned
pairs at inference too.

Where the warped history does not cover the current view nothing is known: the history there is the current
image itself (``align_pair`` fills it so) and the mask is cleared, so those pixels teach "no difference, no
anomaly" rather than a made-up one. The SPEC gains ``#align=MODE``, so the decoded-pair cache keeps aligned and
unaligned pairs apart.
"""
from __future__ import annotations

from ..align import align_pair, check_mode
from .source import Pair, Source


class AlignedSource(Source):
    def __init__(self, source: Source, mode: str):
        self.source, self.mode = source, check_mode(mode)
        self.spec = f"{source.spec}#align={mode}"
        self.names = source.names

    def key(self, i: int) -> str:
        return self.source.key(i)

    def _load(self, i: int) -> Pair:
        pair = self.source[i]
        a = align_pair(pair.history, pair.current, self.mode)
        mask = pair.mask
        if mask is not None and a.valid is not None:
            mask = mask & a.valid
        return Pair(name=pair.name, history=a.history, current=pair.current, mask=mask)


def aligned(source: Source, mode: str) -> Source:
    """``source`` with every history aligned to its current view (``mode`` off: the source itself)."""
    return source if check_mode(mode) == "off" else AlignedSource(source, mode)
