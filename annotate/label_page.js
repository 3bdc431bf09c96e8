// The Label tab's page helpers, loaded once with the page (app.py: launch(head=...), annotate/label_page.py):
// keyboard shortcuts, the brush-size slider, and the box tool. They only press the page's own buttons and
// fill its own fields: every change still goes through the server's events (Save, Add box, ...), which
// check what they receive as they do for any other caller.
//
// Gradio 6.31's image editor (its bundled Index-*.js) is used as follows:
//   - each editor, when it mounts, sets `window.editor` to its drawing core (the last one wins); the setter
//     below records every one, so the box tool finds the core whose canvas lies in #label-editor;
//   - the image is drawn by that core's `image_container` (a PixiJS container) with the image's top-left at
//     its origin; `worldTransform` maps image pixels to canvas CSS pixels (zoom and pan included);
//   - the core's "brush" tool draws and erases: `set_brush_size` / `set_eraser_size` (radius in image pixels).
(() => {
  if (window.__anodLabel) return;
  const L = (window.__anodLabel = { boxMode: false });

  // --- which editor core draws where ------------------------------------------------------------------
  const cores = [];
  let lastCore;
  Object.defineProperty(window, "editor", {
    configurable: true,
    get: () => lastCore,
    set: (v) => {
      lastCore = v;
      if (v && !cores.includes(v)) cores.push(v);
    },
  });
  L.coreIn = (root) => {
    for (let i = cores.length - 1; i >= 0; i--) {
      const t = cores[i] && cores[i].target_element;
      if (root && t && t.isConnected && root.contains(t)) return cores[i];
    }
    return null;
  };

  const $ = (sel) => document.querySelector(sel);
  const editorRoot = () => $("#label-editor");
  const shown = (el) => !!el && el.offsetParent !== null;
  const later = (ms) => new Promise((r) => setTimeout(r, ms));
  const press = (sel) => {
    const b = $(sel);
    if (!b || b.disabled) return false;
    b.click();
    return true;
  };
  const editorButton = (label) => {
    const root = editorRoot();
    return root && root.querySelector(`button[aria-label="${label}"]`);
  };
  const setField = (input, value) => {
    const proto = input.tagName === "TEXTAREA" ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
    Object.getOwnPropertyDescriptor(proto, "value").set.call(input, String(value));
    input.dispatchEvent(new Event("input", { bubbles: true }));
    input.dispatchEvent(new Event("change", { bubbles: true }));
  };

  // --- brush and eraser size --------------------------------------------------------------------------
  const sizeInputs = () => [...document.querySelectorAll("#label-brush-size input")];
  L.size = () => {
    const r = sizeInputs().find((i) => i.type === "range") || sizeInputs()[0];
    return r ? Number(r.value) : NaN;
  };
  // Set the brush and eraser size; one change at a time (the slider's two inputs and the keys all ask), the
  // latest value last.
  let sizeBusy = null;
  let sizeWanted = null;
  L.applySize = (n) => {
    sizeWanted = n;
    if (!sizeBusy) {
      sizeBusy = (async () => {
        while (sizeWanted !== null) {
          const v = sizeWanted;
          sizeWanted = null;
          try {
            await setSize(v);
          } catch (e) {
            console.error("brush size:", e);
          }
        }
        sizeBusy = null;
      })();
    }
    return sizeBusy;
  };
  const setSize = async (n) => {
    // The core's brush tool holds both sizes (radius in image pixels). (Opening the editor's own size menu
    // instead leaves its tool in a "size" mode in which strokes do not paint.)
    const core = L.coreIn(editorRoot());
    const brush = core && core.tools && core.tools.get("brush");
    if (!brush || typeof brush.set_brush_size !== "function" || !Number.isFinite(n)) return false;
    brush.set_brush_size(Math.round(n));
    brush.set_eraser_size(Math.round(n));
    return true;
  };
  L.stepSize = (d) => {
    const inputs = sizeInputs();
    const r = inputs.find((i) => i.type === "range") || inputs[0];
    if (!r) return false;
    const n = Math.min(Number(r.max || 50), Math.max(Number(r.min || 1), L.size() + d));
    inputs.forEach((i) => setField(i, n)); // their input events apply it to the editor
    return true;
  };
  document.addEventListener("input", (ev) => {
    if (ev.target && ev.target.closest && ev.target.closest("#label-brush-size")) L.applySize(Number(ev.target.value));
  });

  const tool = (label) => {
    const b = editorButton(label);
    if (!b) return false;
    L.setBox(false);
    b.click();
    later(50).then(() => L.applySize(L.size()));
    return true;
  };

  // --- the box tool -----------------------------------------------------------------------------------
  let drag = null; // {x, y, band} of a drag in progress (client coordinates)
  let first = null; // the first corner of a two-click box: {ix, iy, mark}
  L.setBox = (on) => {
    L.boxMode = !!on;
    const b = $("#label-box-tool");
    if (b) {
      b.classList.toggle("anod-on", L.boxMode);
      b.setAttribute("aria-pressed", String(L.boxMode));
    }
    const root = editorRoot();
    if (root) root.classList.toggle("anod-box-mode", L.boxMode);
    if (!L.boxMode) clearMarks();
  };
  function clearMarks() {
    if (drag && drag.band) drag.band.remove();
    if (first && first.mark) first.mark.remove();
    drag = null;
    first = null;
  }
  const canvasOf = (ev) => {
    const root = editorRoot();
    const c = ev.target;
    return root && c && c.tagName === "CANVAS" && c.closest(".pixi-target") && root.contains(c) ? c : null;
  };
  // Image pixel under a client point, clamped to the image; null when no image is loaded.
  L.imagePoint = (clientX, clientY) => {
    const core = L.coreIn(editorRoot());
    if (!core || !core.image_container || !core.app || !core.app.canvas) return null;
    const m = core.image_container.worldTransform;
    const r = core.app.canvas.getBoundingClientRect();
    const w = core.width, h = core.height;
    if (!(m && m.a > 0 && m.d > 0 && w > 0 && h > 0)) return null;
    const x = (clientX - r.left - m.tx) / m.a;
    const y = (clientY - r.top - m.ty) / m.d;
    return { x: Math.min(w - 1, Math.max(0, Math.floor(x))), y: Math.min(h - 1, Math.max(0, Math.floor(y))) };
  };
  // Client rectangle of image pixel (x, y): for tests and for the marks drawn here.
  L.screenPoint = (x, y) => {
    const core = L.coreIn(editorRoot());
    if (!core) return null;
    const m = core.image_container.worldTransform;
    const r = core.app.canvas.getBoundingClientRect();
    return { x: r.left + m.tx + x * m.a, y: r.top + m.ty + y * m.d, scale: m.a };
  };
  function mark(x0, y0, x1, y1, cls) {
    const target = editorRoot().querySelector(".pixi-target");
    const r = target.getBoundingClientRect();
    const d = document.createElement("div");
    d.className = cls;
    Object.assign(d.style, {
      left: `${Math.min(x0, x1) - r.left}px`, top: `${Math.min(y0, y1) - r.top}px`,
      width: `${Math.abs(x1 - x0)}px`, height: `${Math.abs(y1 - y0)}px`,
    });
    target.appendChild(d);
    return d;
  }
  async function sendBox(a, b) {
    const field = $("#label-box textarea, #label-box input");
    if (!field) return;
    setField(field, `${a.x} ${a.y} ${b.x} ${b.y}`);
    await later(60); // let the textbox take the value before the button sends it
    press("#label-box-add");
  }
  const swallow = (ev) => {
    ev.stopPropagation();
    ev.preventDefault();
  };
  window.addEventListener("pointerdown", (ev) => {
    if (!L.boxMode || !canvasOf(ev)) return;
    swallow(ev);
    drag = { x: ev.clientX, y: ev.clientY, band: mark(ev.clientX, ev.clientY, ev.clientX, ev.clientY, "anod-box-band") };
  }, true);
  window.addEventListener("pointermove", (ev) => {
    if (!L.boxMode || !drag) return;
    swallow(ev);
    drag.band.remove();
    drag.band = mark(drag.x, drag.y, ev.clientX, ev.clientY, "anod-box-band");
  }, true);
  window.addEventListener("pointerup", (ev) => {
    if (!L.boxMode || !drag) return;
    swallow(ev);
    const start = drag;
    drag.band.remove();
    drag = null;
    const a = L.imagePoint(start.x, start.y);
    const b = L.imagePoint(ev.clientX, ev.clientY);
    if (!a || !b) return;
    if (Math.abs(ev.clientX - start.x) + Math.abs(ev.clientY - start.y) > 4) {
      if (first && first.mark) first.mark.remove();
      first = null;
      sendBox(a, b); // a drag: its two ends are the corners
    } else if (!first) {
      first = { p: a, mark: mark(ev.clientX - 3, ev.clientY - 3, ev.clientX + 3, ev.clientY + 3, "anod-box-corner") };
    } else {
      const p = first.p;
      first.mark.remove();
      first = null;
      sendBox(p, b); // a second click: the two clicks are the corners
    }
  }, true);
  for (const type of ["click", "mousedown", "mouseup", "touchstart", "touchmove"]) {
    window.addEventListener(type, (ev) => {
      if (L.boxMode && canvasOf(ev)) swallow(ev);
    }, { capture: true, passive: false });
  }

  // --- clicks on the page's own controls ---------------------------------------------------------------
  document.addEventListener("click", (ev) => {
    const t = ev.target && ev.target.closest ? ev.target : null;
    if (!t) return;
    if (t.closest("#label-box-tool")) L.setBox(!L.boxMode);
    else if (t.closest('#label-editor button[aria-label="Brush"], #label-editor button[aria-label="Erase"]')) {
      L.setBox(false);
      later(50).then(() => L.applySize(L.size()));
    }
  });

  // --- keys ---------------------------------------------------------------------------------------------
  const TEXT_TYPES = ["text", "search", "email", "password", "url", "tel", "number"];
  const typing = (t) =>
    !!t && (t.isContentEditable || t.tagName === "TEXTAREA" || t.tagName === "SELECT"
      || (t.tagName === "INPUT" && TEXT_TYPES.includes((t.type || "text").toLowerCase())));
  const undo = () => press('#label-editor button[aria-label="Undo"]');
  L.keys = {
    s: () => press("#label-save"),
    n: () => press("#label-next"),
    p: () => press("#label-previous"),
    z: undo,
    b: () => tool("Brush"),
    e: () => tool("Erase"),
    x: () => (L.setBox(!L.boxMode), true),
    "[": () => L.stepSize(-1),
    "]": () => L.stepSize(+1),
  };
  document.addEventListener("keydown", (ev) => {
    if (ev.defaultPrevented || ev.altKey || ev.isComposing || !shown(editorRoot()) || typing(ev.target)) return;
    const key = (ev.key || "").toLowerCase();
    let done = false;
    if (ev.ctrlKey || ev.metaKey) done = key === "z" && !ev.shiftKey && undo();
    else if (key === "escape" && L.boxMode) done = (L.setBox(false), true);
    else if (L.keys[key]) done = L.keys[key]();
    if (done) ev.preventDefault();
  });
})();
