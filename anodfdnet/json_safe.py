"""``json_safe(value)``: a JSON-ready copy of nested dicts, lists and numbers with NaN and infinities as null.

Python's ``json`` writes NaN and Infinity, which strict readers (Arrow's JSON reader, browsers' ``JSON.parse``)
refuse. Used where records are written: the inspection journal (``anodfdnet.inspect.results``) and the
accuracy benchmark's report."""
from __future__ import annotations

import math


def json_safe(v):
    """``v`` with every non-finite float, at any depth of dicts, lists and tuples, replaced by None."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    return v
