"""Data: history/current pairs, where they come from, and how they reach the model.

- ``source``: a ``Pair``, a ``Source`` of pairs (lazy: building one lists files, reading happens per
  pair), its views ``Subset`` and ``ConcatSource``, and the deterministic train/validation ``split``;
- ``spec``: the SPEC registry and parser; one string names a source everywhere (``parse_spec``);
- the sources, each registering its scheme: ``folders`` (``pairs:``, ``ab:``, ``ba:``), ``deeppcb``,
  ``labels`` (``hf:``, the label dataset and its one schema), ``manifest`` (``manifest:``, a CSV or Parquet table
  of pairs), the generator ``synth`` (``synth:``) and ``warped`` (``warp:`` and ``move:``, another source's pairs
  under a controlled viewpoint change) and ``normal`` (``normal:``, another source's pairs without anomalies, for
  ``train --objective normal``);
- ``images``: reading, converting and resizing images and masks, whatever form they arrive in;
- ``dataset``: ``PairDataset``, model-ready tensors with the paper's augmentation, for training, and
  ``augment``: the nuisance augmentation (viewpoint, scale, photometry);
- ``pair_cache``: decoded pairs kept on disk so training decodes each image once (``cached``).

Importing this package imports every source module, so every scheme is known to ``parse_spec`` whichever
entry point (CLI, app, retraining) asks. The public names below are the usual entry.
"""
from . import deeppcb, folders, labels, manifest, normal, synth, warped  # noqa: F401  (each registers its SPEC scheme)
from .dataset import PairDataset
from .source import ConcatSource, Pair, Source, Subset, load_pair, split
from .spec import known_schemes, parse_spec, register_source, spec_help

__all__ = ["ConcatSource", "Pair", "PairDataset", "Source", "Subset", "known_schemes", "load_pair", "parse_spec",
           "register_source", "spec_help", "split"]
