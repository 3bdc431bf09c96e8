"""The one cache folder of the project: ``$ANODFDNET_CACHE`` (default ``~/.cache/anodfdnet``).

Holds what can be rebuilt from the repository: ONNX exports of checkpoints whose own folder is
read-only (``onnx/``), and the app's generated example gallery (``examples/``)."""
from __future__ import annotations

import os
from pathlib import Path

ENV = "ANODFDNET_CACHE"


def cache_root() -> Path:
    base = os.environ.get(ENV)
    return Path(base).expanduser() if base else Path.home() / ".cache" / "anodfdnet"
