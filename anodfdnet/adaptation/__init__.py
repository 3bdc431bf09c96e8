"""Adaptation: a model for a user's own kind of pairs, from a handful of labelled ones.

``adapt`` (``python -m anodfdnet adapt``) fine-tunes a checkpoint on the labelled pairs of one domain (the
Label tab's dataset, or any data SPEC) within a CPU-time budget, mixing in a replay share of what the
checkpoint was trained on, and decides on held-out labelled pairs (cross-fitting over folds) which model the
domain gets: the old one, the old one with a threshold fitted to the domain, or the adapted one, never a
worse one silently.

- ``targets``: the labelled pairs of the domain and their folds;
- ``replay``: a share of the checkpoint's own training mix, and the mixture that training reads;
- ``choice``: thresholds and held-out F1 by cross-fitting, and the choice between the candidates;
- ``run``: the command (folds, the final model, the report, serving the result).
"""
from .run import AdaptConfig, adapt

__all__ = ["AdaptConfig", "adapt"]
