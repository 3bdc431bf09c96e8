"""What the Label tab adds to the page outside its components: the helpers' script and the layout rules.

- :data:`HEAD`: ``label_page.js`` in a ``<script>`` (app.py passes it to ``launch(head=...)``, so it runs
  before the editors mount): keyboard shortcuts (listed on the page by ``tab.SHORTCUTS``), the
  brush-size slider, and the box tool (a drag, or two clicks, on the image fills the tab's box field and
  presses **Add box**; the server fills the rectangle into the mask).
- :data:`CSS`: the editor's canvas starts right of its tool column and below its zoom toolbar, so neither
  covers the image at any width; at phone width the toolbar moves below the editor's label instead of
  covering it. The box tool's marks.
"""
from __future__ import annotations

from pathlib import Path

JS = Path(__file__).with_name("label_page.js").read_text()
HEAD = f"<script>\n{JS}\n</script>"

TOOL_COLUMN_PX = 48  # the editor's tool column: 30 px wide, 15 px from the left edge
TOOLBAR_PX = 34  # the editor's label and zoom toolbar, one line

CSS = f"""
#label-editor .pixi-target {{ left: {TOOL_COLUMN_PX}px !important; top: {TOOLBAR_PX}px !important;
  width: calc(100% - {TOOL_COLUMN_PX}px) !important; height: calc(100% - {TOOLBAR_PX}px) !important; }}
#label-editor.anod-box-mode .pixi-target canvas {{ cursor: crosshair !important; }}
.anod-box-band, .anod-box-corner {{ position: absolute; pointer-events: none; z-index: 5;
  border: 2px dashed rgb(255, 0, 128); background: rgba(255, 0, 128, 0.15); box-sizing: border-box; }}
#label-box-tool.anod-on {{ background: rgba(255, 0, 128, 0.18); border-color: rgb(255, 0, 128); }}
#label-keys {{ font-size: var(--text-sm); color: var(--body-text-color-subdued); }}
#label-nav #label-progress {{ min-width: min(100%, 260px); flex: 1 1 260px; }}
@media (max-width: 640px) {{
  #label-editor .top-panel {{ top: {TOOLBAR_PX - 4}px !important; }}
  #label-editor .pixi-target {{ top: {2 * TOOLBAR_PX}px !important; height: calc(100% - {2 * TOOLBAR_PX}px) !important; }}
}}
"""

__all__ = ["CSS", "HEAD", "JS"]
