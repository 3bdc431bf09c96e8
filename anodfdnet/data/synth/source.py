"""The ``synth:N[:SEED[:hard]]`` data source: N generated pairs, registered with the SPEC registry."""
from __future__ import annotations

from ...errors import UserError
from ..source import Pair, Source
from ..spec import register_source
from .nuisance import HARDNESS
from .pairs import _derive, generate_pair


class SynthSource(Source):
    """``synth:N[:SEED[:hard]]``: N generated pairs; pair i uses a seed derived from (SEED, i)."""

    MAX_PAIRS = 1_000_000

    def __init__(self, n: int, seed: int = 0, hardness: str = "easy", size: int = 256, spec: str | None = None):
        if hardness not in HARDNESS:
            raise ValueError(f"hardness must be one of {sorted(HARDNESS)}, got {hardness!r}")
        self.n, self.seed, self.hardness, self.size = int(n), int(seed), hardness, int(size)
        self.spec = spec or f"synth:{self.n}:{self.seed}" + (":hard" if hardness == "hard" else "")
        self.names = [f"synth-{i:06d}" for i in range(self.n)]

    def key(self, i: int) -> str:
        return f"synth:{self.seed}:{self.hardness}:{self._index(i)}"

    def _load(self, i: int) -> Pair:
        pair = generate_pair(_derive(self.seed, i), self.size, self.hardness)
        pair.name = self.names[i]
        return pair


def _synth_from_spec(arg: str, spec: str) -> SynthSource:
    usage = "write synth:N[:SEED[:hard]], e.g. synth:1000 or synth:1000:7:hard"
    fields = arg.split(":")
    if len(fields) > 3:
        raise UserError(f"data spec '{spec}' has too many fields: {usage}.")
    try:
        n = int(fields[0])
    except ValueError:
        raise UserError(f"data spec '{spec}': the number of pairs '{fields[0]}' is not a whole number; {usage}.") from None
    if not 1 <= n <= SynthSource.MAX_PAIRS:
        raise UserError(f"data spec '{spec}': the number of pairs must be between 1 and {SynthSource.MAX_PAIRS}, got {n}.")
    seed = 0
    if len(fields) > 1:
        try:
            seed = int(fields[1])
        except ValueError:
            raise UserError(f"data spec '{spec}': the seed '{fields[1]}' is not a whole number; {usage}.") from None
        if seed < 0:
            raise UserError(f"data spec '{spec}': the seed must not be negative, got {seed}.")
    hardness = "easy"
    if len(fields) > 2:
        hardness = fields[2].strip().lower()
        if hardness not in HARDNESS:
            raise UserError(f"data spec '{spec}': the last field must be 'hard' or 'easy', got '{fields[2]}'.")
    return SynthSource(n, seed, hardness, spec=spec)


register_source(
    "synth",
    _synth_from_spec,
    help="synth:N[:SEED[:hard]] — N generated pairs (default seed 0, easy nuisance; 'hard' = larger viewpoint shift)",
)
