"""The Label tab: people paint anomaly masks in the browser; the masks land in a Hugging Face dataset.

``build_tab`` (Gradio) is imported lazily so that the store, the Hub sync and the queue, which import
no Gradio, can be used without it (e.g. on a training machine)::

    from annotate.store import LabelStore      # no Gradio
    from annotate import build_tab             # imports Gradio (build_review_tab and REVIEW_CSS too)
"""
from __future__ import annotations

__all__ = ["build_tab", "build_review_tab", "LabelStore", "REVIEW_CSS", "PAGE_CSS", "PAGE_HEAD"]


def __getattr__(name: str):
    if name == "build_tab":
        from .tab import build_tab

        return build_tab
    if name == "REVIEW_CSS":
        from .review_tab import CSS

        return CSS
    if name == "build_review_tab":
        from .review_tab import build_review_tab

        return build_review_tab
    if name in ("PAGE_CSS", "PAGE_HEAD"):  # the Label tab's page rules and helpers' script (label_page.py)
        from . import label_page

        return label_page.CSS if name == "PAGE_CSS" else label_page.HEAD
    if name == "LabelStore":
        from .store import LabelStore

        return LabelStore
    raise AttributeError(f"module 'annotate' has no attribute {name!r}")
