"""The labelled pairs of the target domain, and the folds that hold some of them out.

``--labels`` is either a label dataset (the Label tab's folder or a Hub dataset id, read with a labels
policy as ``hf:`` reads it) or any data SPEC with masks (``ab:DIR``, ``pairs:DIR``, ...). Folds are made
from each pair's key (the content hash for labels), so every label of one pair stays on one side and the
same pairs always fall in the same folds.
"""
from __future__ import annotations

import hashlib

from ..data import Source, Subset, known_schemes, parse_spec
from ..data.labels import labels_spec
from ..errors import UserError


def target_spec(labels: str, policy: str = "latest", min_agreement: float | None = None,
                labels_per_pair: int | None = None) -> str:
    """The SPEC that reads ``labels``: itself when it already is a SPEC of a known scheme (other than
    ``hf:``, which gets the policy), else the label dataset folder or Hub id read with ``policy``."""
    scheme, colon, _ = labels.partition(":")
    if colon and scheme in known_schemes() and scheme != "hf":
        if policy != "latest" or min_agreement is not None or labels_per_pair is not None:
            raise UserError(f"--labels-policy, --min-agreement and --labels-per-pair apply to a label dataset, not to '{labels}'.")
        return labels
    return labels_spec(labels, policy, min_agreement, labels_per_pair)


def labelled_pairs(spec: str) -> Source:
    """The source of ``spec``, checked: at least one pair, every pair with a mask."""
    source = parse_spec(spec)
    if len(source) == 0:
        raise UserError(f"'{spec}' holds no labelled pairs.")
    return source


def _rank(key: str) -> str:
    return hashlib.blake2b(f"fold\0{key}".encode(), digest_size=8).hexdigest()


def make_folds(source: Source, folds: int) -> list[list[int]]:
    """The indices of ``source`` split into ``min(folds, pairs)`` folds by key (leave-one-pair-out when there
    are no more pairs than folds); all items of one key (several annotators of one pair) share a fold."""
    if folds < 2:
        raise UserError(f"--folds must be at least 2, got {folds}.")
    keys = sorted({source.key(i) for i in range(len(source))}, key=_rank)
    n = min(folds, len(keys))
    fold_of = {k: j % n for j, k in enumerate(keys)}
    out: list[list[int]] = [[] for _ in range(n)]
    for i in range(len(source)):
        out[fold_of[source.key(i)]].append(i)
    return out


def subset(source: Source, indices: list[int], tag: str) -> Subset:
    return Subset(source, indices, f"{source.spec}#{tag}")
