"""``RUN/report.html``: one self-contained page listing a run's pairs worst first.

Everything is inside the file (thumbnails as data URLs, the style, the filter script): it opens from disk in a
browser with no network and no server. Each row: rank, id, highest probability, anomalous area, regions,
uncertain area, the alignment's verdict, and the history, current and overlay thumbnails (links to the full
mask and heat map beside the file). A slider hides pairs below a highest probability, a box filters by id.
Every string from the data is escaped. The worst pairs (``inspect --report-rows``, default 500) are listed; the
rest are in results.parquet.
"""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#111;background:#fff}
h1{font-size:20px;margin:0 0 4px}
.meta{color:#444;margin:0 0 12px}
.controls{position:sticky;top:0;background:#f4f4f6;padding:8px 10px;border:1px solid #ddd;display:flex;gap:18px;
 align-items:center;flex-wrap:wrap;z-index:1}
table{border-collapse:collapse;margin-top:10px;width:100%}
th,td{border-bottom:1px solid #e3e3e3;padding:4px 6px;text-align:left;vertical-align:middle}
th{background:#fafafa;position:sticky;top:46px}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.thumbs img{height:96px;margin-right:4px;border:1px solid #ccc;image-rendering:auto}
tr.hidden{display:none}
.bad{color:#a00}
.verdict{max-width:280px;font-size:12px;color:#333}
"""

SCRIPT = """
(function(){
  var slider=document.getElementById('min-score'), box=document.getElementById('id-filter'),
      shown=document.getElementById('shown'), value=document.getElementById('min-score-value');
  function apply(){
    var t=parseFloat(slider.value), q=box.value.toLowerCase(), n=0;
    value.textContent=t.toFixed(2);
    document.querySelectorAll('#pairs tbody tr').forEach(function(tr){
      var ok=parseFloat(tr.dataset.score)>=t && (!q || tr.dataset.id.toLowerCase().indexOf(q)>=0);
      tr.classList.toggle('hidden',!ok); if(ok) n++;
    });
    shown.textContent=n;
  }
  slider.addEventListener('input',apply); box.addEventListener('input',apply); apply();
})();
"""


def _data_url(path: Path) -> str:
    try:
        return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError:
        return ""


def _img(path: Path, alt: str) -> str:
    url = _data_url(path)
    return f'<img src="{url}" alt="{html.escape(alt)}">' if url else f'<span class="bad">{html.escape(alt)} missing</span>'


def render_report(run: Path, shown: list[dict], total: int, errors: list[str], meta: dict) -> str:
    """The page for ``shown``, the run's worst rows worst first (results.ranked), of ``total`` rows in all."""
    run = Path(run)
    e = html.escape
    body = []
    for rank, r in enumerate(shown, 1):
        fid = r["file_id"]
        thumbs = "".join(_img(run / "thumbs" / f"{fid}_{k}.jpg", name) for k, name in
                         (("h", "history"), ("c", "current"), ("o", "overlay")))
        links = f'<a href="{e(r["mask_png"])}">mask</a> · <a href="{e(r["heat_png"])}">heat map</a>'
        body.append(
            f'<tr data-score="{r["score_max"]:.6f}" data-id="{e(r["id"])}">'
            f'<td class="num">{rank}</td><td class="id">{e(r["id"])}<br><small>{links}</small></td>'
            f'<td class="num score">{r["score_max"]:.3f}</td><td class="num">{r["area_pct"]:.2f}</td>'
            f'<td class="num">{r["n_regions"]}</td><td class="num">{r["uncertain_pct"]:.2f}</td>'
            f'<td class="verdict">{e(r["align_verdict"])}</td><td class="thumbs">{thumbs}</td></tr>')
    more = (f"<p>{total - len(shown)} more pairs (lower scores) are in results.parquet.</p>"
            if total > len(shown) else "")
    errs = ""
    if errors:
        items = "".join(f"<li>{e(x)}</li>" for x in errors)
        errs = f'<h2 class="bad">{len(errors)} pairs or lines could not be read (skipped)</h2><ul id="errors">{items}</ul>'
    data = str(meta.get("data", ""))
    title = f"Inspection of {os.path.basename(data.rstrip('/')) or data}"
    facts = (f"{total} pairs · threshold {float(meta.get('threshold', 0.5)):.3f} · checkpoint "
             f"{e(Path(str(meta.get('checkpoint', ''))).name)} · alignment {e(str(meta.get('align', '')))} · "
             f"{e(str(meta.get('engine', '')))}" + (f" · {len(errors)} unreadable" if errors else ""))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data: file: 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{e(title)}</title><style>{STYLE}</style></head><body>
<h1>{e(title)}</h1>
<p class="meta">{facts}<br>data: {e(data)}</p>
<div class="controls">
 <label>highest probability at least <input id="min-score" type="range" min="0" max="1" step="0.01" value="0">
 <b id="min-score-value">0.00</b></label>
 <label>id contains <input id="id-filter" type="search"></label>
 <span><b id="shown">{len(shown)}</b> of {len(shown)} pairs shown</span>
</div>
<table id="pairs"><thead><tr><th>#</th><th>pair</th><th>highest probability</th><th>anomalous %</th><th>regions</th>
<th>uncertain %</th><th>alignment</th><th>history · current · overlay (red: anomalous, yellow boxes: regions)</th></tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
{more}{errs}
<script>{SCRIPT}</script>
</body></html>
"""


def write_report(run: Path, shown: list[dict], total: int, errors: list[str], meta: dict) -> Path:
    path = Path(run) / "report.html"
    tmp = path.with_name(".report.html.tmp")
    tmp.write_text(render_report(run, shown, total, errors, meta), encoding="utf-8")
    os.replace(tmp, path)
    return path
