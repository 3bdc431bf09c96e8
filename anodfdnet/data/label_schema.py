"""The label dataset's columns, defined once (described in ``anodfdnet/data/labels.py``, which reads them
back as ``hf:DIR_OR_REPO``; written by ``annotate/store.py``; checked by ``label_files.py``).

Built on first use: they need the datasets package (about a second to import), and most users of
``anodfdnet.data`` never read labels.
"""
from __future__ import annotations

import functools

SCHEMA_VERSION = 2
V2_COLUMNS = ("identity", "kind", "verdict", "gold_iou")


@functools.cache
def features():
    from datasets import Features, Image, Value

    return Features(
        {
            "id": Value("string"),
            "history": Image(),
            "current": Image(),
            "mask": Image(),
            "annotator": Value("string"),
            "anomaly_type": Value("string"),
            "note": Value("string"),
            "created_at": Value("string"),
            "source": Value("string"),
            "content_hash": Value("string"),
            "model_checkpoint": Value("string"),
            "schema_version": Value("int32"),
            "identity": Value("string"),
            "kind": Value("string"),
            "verdict": Value("string"),
            "gold_iou": Value("float32"),
        }
    )


@functools.cache
def v1_features():
    """The schema of version 1 shards (the v2 columns absent)."""
    from datasets import Features

    return Features({k: v for k, v in features().items() if k not in V2_COLUMNS})
