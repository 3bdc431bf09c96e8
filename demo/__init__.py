"""The app's inference tab (Gradio) and its rendering; ``app.py`` composes it with the other tabs.

- ``demo.tab``: the Blocks of the tab and its two API endpoints, ``/predict`` and ``/rethreshold``;
- ``demo.render``: threshold, overlay, mask and region figures of a probability map, and the level map
  that encodes the mask of every slider step (no Gradio);
- ``demo.live``: the live view (``live_view.js``): overlay and mask redrawn in the browser as the slider
  moves, from the level map sent once per prediction;
- ``demo.models``: the checkpoints on offer and a bounded cache of loaded predictors (no Gradio);
- ``demo.examples``: the synthetic example gallery, generated once into a cache folder (no Gradio).

The tab's names are imported lazily, so ``import demo.render`` (e.g. for a benchmark) loads no Gradio.
"""
from __future__ import annotations

__all__ = ["CSS", "MAX_FILE_BYTES", "TITLE", "build_tab"]


def __getattr__(name: str):
    if name in __all__:
        from . import tab

        return getattr(tab, name)
    raise AttributeError(f"module 'demo' has no attribute {name!r}")
