// The Detect tab's live view (the body of gr.HTML's js_on_load: `element`, `props` and `watch` are given).
//
// After each prediction the server sends, once, the current image (JPEG) and a uint8 "level" map: a pixel's
// level is how many slider thresholds it reaches, so at slider step k (threshold k / STEPS) the server's mask
// is exactly `level > k` (demo/render.py: threshold_levels). Moving the slider then redraws the overlay and
// the mask here, with no request. A step from k to k' flips only the pixels whose level lies between the two
// (found at once: pixels are grouped by level), so only their neighbourhoods are recoloured and uploaded; a
// jump over many levels redraws everything (two sliding-window sums for the outline). The figures (regions,
// boxes) and the mask download still come from the server, a moment later.
const STEPS = 100;
const TINT = [255, 32, 32];
const TINT_ALPHA = 0.45;
const OUTLINE = [255, 230, 0];
const rgba32 = (r, g, b) => ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0; // little-endian RGBA in one word
const OUTLINE32 = rgba32(...OUTLINE);
const WHITE32 = rgba32(255, 255, 255);
const BLACK32 = rgba32(0, 0, 0);

const TILE = 64; // a slider step uploads the 64x64 tiles around the pixels that flipped

const live = (window.__anodfdnetLive = window.__anodfdnetLive || {});
live.data = null;
live.token = 0;

function part(name) {
  return element.querySelector(`[data-part="${name}"]`);
}

async function pixels(url, width, height) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  // No colour management, no premultiplication: the level map's grey values must arrive exactly.
  const bitmap = await createImageBitmap(await response.blob(), { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  const canvas = new OffscreenCanvas(width, height);
  const g = canvas.getContext("2d", { willReadFrequently: true });
  g.drawImage(bitmap, 0, 0);
  bitmap.close();
  return g.getImageData(0, 0, width, height).data;
}

function outlineWidth(h, w) {
  return Math.max(2, Math.round(Math.max(h, w) / 256));
}

async function load(value) {
  const token = ++live.token;
  if (!value || !value.image || !value.levels) {
    live.data = null;
    show(false);
    return;
  }
  const w = value.width, h = value.height, n = w * h;
  const [rgba, lv] = await Promise.all([pixels(value.image.url, w, h), pixels(value.levels.url, w, h)]);
  if (token !== live.token) return; // a newer prediction arrived meanwhile
  const levels = new Uint8Array(n);
  const base = new Uint32Array(n);
  const tinted = new Uint32Array(n);
  const src = new Uint32Array(rgba.buffer);
  const a = 1 - TINT_ALPHA;
  const t = TINT.map((c) => TINT_ALPHA * c);
  for (let i = 0, j = 0; i < n; i++, j += 4) {
    levels[i] = lv[j];
    base[i] = src[i] | 0xff000000;
    tinted[i] = rgba32(
      Math.min(255, Math.round(Math.round(rgba[j] * a) + t[0])),
      Math.min(255, Math.round(Math.round(rgba[j + 1] * a) + t[1])),
      Math.min(255, Math.round(Math.round(rgba[j + 2] * a) + t[2])),
    );
  }
  // Pixel indices grouped by level (a counting sort): moving the slider one step touches only the pixels
  // of one level, so a step redraws the region around them instead of the whole image.
  const start = new Uint32Array(STEPS + 3);
  for (let i = 0; i < n; i++) start[levels[i] + 1]++;
  for (let l = 1; l < start.length; l++) start[l] += start[l - 1];
  const order = new Uint32Array(n);
  const fill = start.slice();
  for (let i = 0; i < n; i++) order[fill[levels[i]]++] = i;
  const overlayImage = new ImageData(w, h), maskImage = new ImageData(w, h);
  const tw = Math.ceil(w / TILE), th = Math.ceil(h / TILE);
  live.data = {
    tw, th, mark: new Uint32Array(tw * th), gen: 0, tiles: new Int32Array(tw * th),
    counts: value.counts || null, fullW: value.full_width || w, fullH: value.full_height || h,
    w, h, n, levels, base, tinted, order, start, r: outlineWidth(h, w), k: null, count: 0,
    mask: new Uint8Array(n), cnt: new Uint16Array(n), row: new Uint16Array(n), colSum: new Int32Array(w),
    overlayImage, maskImage, out: new Uint32Array(overlayImage.data.buffer), mout: new Uint32Array(maskImage.data.buffer),
  };
  show(true);
  render(currentThreshold(value.threshold), true);
}

function show(visible) {
  const root = part("root");
  if (root) root.dataset.ready = visible ? "1" : "0";
}

function currentThreshold(fallback) {
  const slider = document.querySelector(`#${props.slider_id} input[type=range]`);
  const v = slider ? parseFloat(slider.value) : NaN;
  return Number.isFinite(v) ? v : fallback;
}

// The outline: the pixels outside the mask with a mask pixel within r (a square of side 2r + 1 around them).
// `cnt[i]` counts the mask pixels in the square around pixel i, so a pixel that flips adds or removes one
// from the (2r + 1)^2 pixels around it, and those pixels alone change colour.

// Every pixel at step k: mask and colours, then the box counts (two sliding-window sums) and the outline
// over the mask's bounding box widened by r, the only place they can be non-zero. O(pixels).
function renderFull(d, k) {
  const { w, h, n, r, levels, mask, cnt, row: tmp, out, mout, tinted, base } = d;
  let count = 0, x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (let y = 0, i = 0; y < h; y++) {
    let first = -1, last = -1;
    for (let x = 0; x < w; x++, i++) {
      const m = levels[i] > k ? 1 : 0;
      mask[i] = m;
      mout[i] = m ? WHITE32 : BLACK32;
      out[i] = m ? tinted[i] : base[i];
      if (m) {
        if (first < 0) first = x;
        last = x;
      }
    }
    if (first >= 0) {
      count += 1; // rows with a mask pixel; the exact count is taken below
      if (first < x0) x0 = first;
      if (last > x1) x1 = last;
      if (y < y0) y0 = y;
      y1 = y;
    }
  }
  cnt.fill(0);
  d.count = 0;
  if (!count) return;
  // The region where counts can be non-zero: the mask's box widened by r.
  const ax = Math.max(0, x0 - r), bx = Math.min(w, x1 + r + 1), ay = Math.max(0, y0 - r), by = Math.min(h, y1 + r + 1);
  let total = 0;
  for (let y = ay; y < by; y++) { // horizontal sums into tmp
    const row = y * w;
    let s = 0;
    for (let x = ax; x < Math.min(ax + r, bx); x++) s += mask[row + x];
    for (let x = ax; x < bx; x++) {
      if (x + r < bx) s += mask[row + x + r];
      if (x - r - 1 >= ax) s -= mask[row + x - r - 1];
      tmp[row + x] = s;
      total += mask[row + x];
    }
  }
  const col = d.colSum;
  col.fill(0, ax, bx);
  for (let y = ay; y < Math.min(ay + r, by); y++) for (let x = ax; x < bx; x++) col[x] += tmp[y * w + x];
  for (let y = ay; y < by; y++) { // vertical sums of tmp, one row at a time, and the colours
    const add = y + r < by ? (y + r) * w : -1, sub = y - r - 1 >= ay ? (y - r - 1) * w : -1, row = y * w;
    for (let x = ax; x < bx; x++) {
      if (add >= 0) col[x] += tmp[add + x];
      if (sub >= 0) col[x] -= tmp[sub + x];
      const i = row + x;
      cnt[i] = col[x];
      if (!mask[i] && col[x]) out[i] = OUTLINE32;
    }
  }
  d.count = total;
}

function render(threshold, full = false) {
  const d = live.data;
  if (!d) return;
  const k = Math.max(0, Math.min(STEPS, Math.round(threshold * STEPS)));
  const overlay = part("overlay"), maskCanvas = part("mask");
  if (!overlay || !maskCanvas) return;
  for (const c of [overlay, maskCanvas]) {
    if (c.width !== d.w || c.height !== d.h) {
      c.width = d.w;
      c.height = d.h;
      full = true;
    }
  }
  if (overlay.dataset.step === undefined || d.k === null) full = true;
  const { w, h, n, r, mask, cnt, out, mout, order, start } = d;
  const og = overlay.getContext("2d"), mg = maskCanvas.getContext("2d");
  let dirty = 0; // tiles to upload, listed in d.tiles
  if (!full && k !== d.k) {
    // Pixels whose level lies between the two steps flip; nothing else does.
    const lo = Math.min(k, d.k), hi = Math.max(k, d.k), on = k < d.k ? 1 : 0, delta = on ? 1 : -1;
    const from = start[lo + 1], to = start[hi + 1];
    if ((to - from) * (2 * r + 1) * (2 * r + 1) > n / 2) full = true; // cheaper to redo everything
    else {
      const { mark, tiles, tw } = d;
      const gen = ++d.gen;
      for (let j = from; j < to; j++) {
        const i = order[j];
        mask[i] = on;
        mout[i] = on ? WHITE32 : BLACK32;
        const y = (i / w) | 0, x = i - y * w;
        const xa = Math.max(0, x - r), xb = Math.min(w - 1, x + r), ya = Math.max(0, y - r), yb = Math.min(h - 1, y + r);
        for (let yy = ya; yy <= yb; yy++) {
          const row = yy * w;
          for (let xx = xa; xx <= xb; xx++) cnt[row + xx] += delta;
        }
        const ty0 = (ya / TILE) | 0, ty1 = (yb / TILE) | 0, tx0 = (xa / TILE) | 0, tx1 = (xb / TILE) | 0;
        for (let ty = ty0; ty <= ty1; ty++) {
          for (let tx = tx0; tx <= tx1; tx++) {
            const t = ty * tw + tx;
            if (mark[t] !== gen) {
              mark[t] = gen;
              tiles[dirty++] = t;
            }
          }
        }
      }
      // Recolour the neighbourhoods (after every count is final).
      const { tinted, base } = d;
      for (let j = from; j < to; j++) {
        const i = order[j], y = (i / w) | 0, x = i - y * w;
        const xa = Math.max(0, x - r), xb = Math.min(w - 1, x + r), ya = Math.max(0, y - r), yb = Math.min(h - 1, y + r);
        for (let yy = ya; yy <= yb; yy++) {
          for (let p = yy * w + xa, end = yy * w + xb; p <= end; p++) {
            out[p] = mask[p] ? tinted[p] : cnt[p] ? OUTLINE32 : base[p];
          }
        }
      }
      d.count += on ? to - from : from - to;
    }
  }
  if (full) {
    renderFull(d, k);
    og.putImageData(d.overlayImage, 0, 0);
    mg.putImageData(d.maskImage, 0, 0);
  } else if (dirty <= 16) {
    for (let j = 0; j < dirty; j++) {
      const t = d.tiles[j], tx = (t % d.tw) * TILE, ty = ((t / d.tw) | 0) * TILE;
      const tx1 = Math.min(w, tx + TILE), ty1 = Math.min(h, ty + TILE);
      og.putImageData(d.overlayImage, 0, 0, tx, ty, tx1 - tx, ty1 - ty);
      mg.putImageData(d.maskImage, 0, 0, tx, ty, tx1 - tx, ty1 - ty);
    }
  } else { // many tiles: one upload of the rectangle around them costs less than one call per tile
    let x0 = w, y0 = h, x1 = 0, y1 = 0;
    for (let j = 0; j < dirty; j++) {
      const t = d.tiles[j], tx = (t % d.tw) * TILE, ty = ((t / d.tw) | 0) * TILE;
      x0 = Math.min(x0, tx);
      y0 = Math.min(y0, ty);
      x1 = Math.max(x1, Math.min(w, tx + TILE));
      y1 = Math.max(y1, Math.min(h, ty + TILE));
    }
    og.putImageData(d.overlayImage, 0, 0, x0, y0, x1 - x0, y1 - y0);
    mg.putImageData(d.maskImage, 0, 0, x0, y0, x1 - x0, y1 - y0);
  }
  d.k = k;
  live.lastTiles = full ? -1 : dirty;
  const caption = part("caption");
  if (caption) { // the server's counts at full resolution (the same as the drawn ones unless subsampled)
    const total = d.fullW * d.fullH, count = d.counts ? d.counts[k] : d.count;
    const shown = d.fullW !== w ? ` (shown at ${w}x${h} of ${d.fullW}x${d.fullH})` : "";
    caption.textContent = `Threshold ${(k / STEPS).toFixed(2)}: ${((100 * count) / total).toFixed(2)}% of the image anomalous (${count.toLocaleString("en-US")} pixels)${shown}`;
  }
  overlay.dataset.step = String(k);
  live.step = k;
  live.count = d.count;
  live.drawnAt = performance.now();
}

live.render = render;
live.maskAt = (threshold) => {
  // The mask drawn at a threshold, as a string of 0/1 per pixel (for tests).
  render(threshold);
  return live.data ? Array.from(live.data.mask).join("") : "";
};

const download = part("download");
if (download) {
  download.addEventListener("click", (event) => {
    event.preventDefault();
    const overlay = part("overlay");
    if (!live.data || !overlay) return;
    overlay.toBlob((blob) => {
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = `overlay-threshold-${(live.step / STEPS).toFixed(2)}.png`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    }, "image/png");
  });
}
const fullscreen = part("fullscreen");
if (fullscreen) {
  fullscreen.addEventListener("click", () => {
    const pane = part("panes");
    if (pane && pane.requestFullscreen) pane.requestFullscreen();
  });
}

watch("value", () => load(props.value).catch((e) => console.error("live view:", e)));
load(props.value).catch((e) => console.error("live view:", e));
