"""Data: pairs and their sources named by SPEC strings (``source``), image reading (``images``), the label
dataset (``labels``) and the synthetic generator (``synth``)."""
from .source import (  # noqa: F401
    ABSource,
    ConcatSource,
    DeepPCBSource,
    Pair,
    PairDataset,
    PairFolderSource,
    Source,
    Subset,
    deeppcb_mask,
    known_schemes,
    load_pair,
    parse_spec,
    read_deeppcb_boxes,
    register_source,
    spec_help,
    split,
)
