"""The Label tab (Gradio): paint what is anomalous in the current image; Save adds a row to the label dataset.

Wiring only: the store (``store.py``), the Hub sync (``hub_sync.py``), the queue (``queue.py``) and the
model (``anodfdnet.predict``) do the work. The mask is read from the editor's value when Save is
clicked: the union of ``layer[..., 3] > 0`` over the layers (anything painted, at any opacity).
The Save endpoint is public as ``/save_label``::

    client.predict(handle_file("history.png"),
                   {"background": handle_file("current.png"), "layers": [handle_file("mask_layer.png")], "composite": None},
                   "alice", "oil leak", "a note", api_name="/save_label")
"""
from __future__ import annotations

import threading
from collections.abc import Callable

import gradio as gr
import numpy as np

from anodfdnet.errors import UserError
from anodfdnet.data.labels import ANOMALY_TYPES, NO_ANOMALY, content_hash

from .hub_sync import HubSync
from .queue import LabelQueue
from .store import LabelStore

BRUSH_RGB = (255, 0, 128)  # one fixed colour: the mask is where anything was painted
BRUSH_ALPHA = 0.55  # see-through, so the anomaly stays visible under the paint
BRUSH_SIZE = 6  # radius in image pixels; the brush menu changes it
BRUSH = f"rgba({BRUSH_RGB[0]}, {BRUSH_RGB[1]}, {BRUSH_RGB[2]}, {BRUSH_ALPHA})"

INTRO = """\
**Label a pair.** Load a pair (upload both images, or **Next pair** from the queue), then paint over
everything that is anomalous in the *current* image: a foreign body, a missing or loose part, a leak, a
crack. Use the brush (size in its menu), the eraser, undo or clear. **Start from the model** paints the
model's guess for you to correct. Pick the anomaly type (**no anomaly** with an empty mask is a valid
label too), give your name, and **Save**. Each save adds one row to the label dataset.
"""


def mask_from_editor(value: dict | None, shape: tuple[int, int]) -> np.ndarray:
    """The painted mask: union over the editor's layers of ``alpha > 0``; empty when nothing is painted."""
    mask = np.zeros(shape, bool)
    for layer in (value or {}).get("layers") or []:
        if layer is None:
            continue
        a = np.asarray(layer)
        if a.ndim != 3 or a.shape[2] != 4:
            raise UserError(f"a paint layer must be an RGBA image, got shape {tuple(a.shape)}.")
        if a.shape[:2] != tuple(shape):
            raise UserError(f"a paint layer is {a.shape[1]}x{a.shape[0]} but the current image is {shape[1]}x{shape[0]}.")
        mask |= a[..., 3] > 0
    return mask


def paint_layer(mask: np.ndarray) -> np.ndarray:
    """An RGBA layer holding ``mask`` in the brush colour (what the editor shows as painted strokes)."""
    layer = np.zeros((*mask.shape, 4), np.uint8)
    layer[mask] = (*BRUSH_RGB, round(255 * BRUSH_ALPHA))
    return layer


def composite(current: np.ndarray, layer: np.ndarray) -> np.ndarray:
    a = layer[..., 3:4].astype(np.float32) / 255.0
    out = current.astype(np.float32) * (1 - a) + layer[..., :3].astype(np.float32) * a
    return np.round(out).astype(np.uint8)


def _rgb(a) -> np.ndarray | None:
    if a is None:
        return None
    a = np.asarray(a)
    return a[..., :3] if a.ndim == 3 and a.shape[2] == 4 else a


class _Predictors:
    """Load each checkpoint once per process (a model per request would be far too slow)."""

    def __init__(self):
        self._cache: dict[str, object] = {}
        self._lock = threading.Lock()

    def __call__(self, checkpoint: str):
        with self._lock:
            if checkpoint not in self._cache:
                from anodfdnet.predict import Predictor

                self._cache[checkpoint] = Predictor(checkpoint)
            return self._cache[checkpoint]


def _checkpoint_choices() -> list[tuple[str, str]]:
    from anodfdnet.checkpoint import list_checkpoints

    return [(f"{i.name} (depth {i.config.depth})", str(i.path)) for i in list_checkpoints()]


class LabelTab:
    """The Label tab's components and services, as ``build_tab`` returns them (for composing and tests)."""

    def __init__(self, **parts):
        self.__dict__.update(parts)


def build_tab(store: LabelStore | None = None, queue: LabelQueue | None = None, hub: HubSync | None = None,
              checkpoints: list[tuple[str, str]] | None = None, predictor: Callable[[str], object] | None = None) -> LabelTab:
    """Render the Label tab's components into the current Blocks context (call it inside ``gr.Tab``).

    store, queue, hub: default to the ones the environment names (ANODFDNET_LABEL_DIR, ANODFDNET_QUEUE,
    HF_TOKEN + ANODFDNET_DATASET_REPO); the Hub worker is started here. checkpoints: (label, reference)
    choices for "Start from the model" (default: every checkpoint found). predictor: reference ->
    object with ``predict(history, current) -> prob``; pass the app's shared one to load each model once.
    """
    store = store or LabelStore()
    queue = queue if queue is not None else LabelQueue(store)
    hub = (hub or HubSync(store)).start()
    checkpoints = _checkpoint_choices() if checkpoints is None else checkpoints
    predictor = predictor or _Predictors()
    model_names = {ref: label.split(" (")[0] for label, ref in checkpoints}

    def progress_text(on_screen: str | None = None) -> str:
        if not queue.enabled:
            return f"No queue is set (ANODFDNET_QUEUE): upload a pair. The dataset holds **{store.size()}** labels."
        done, total = queue.progress()
        text = f"Queue `{queue.spec}`: **{done} / {total}** pairs labelled. The dataset holds **{store.size()}** labels."
        return text + (f" On screen: pair `{on_screen}`." if on_screen else "")

    gr.Markdown(INTRO)
    with gr.Row(equal_height=True):
        next_btn = gr.Button("Next pair", variant="secondary", interactive=queue.enabled, scale=0, min_width=160,
                             elem_id="label-next")
        progress_md = gr.Markdown(elem_id="label-progress")
    with gr.Row(equal_height=False):
        history_img = gr.Image(label="History (earlier, known good)", type="numpy", image_mode="RGB", format="png",
                               sources=("upload", "clipboard"), height=480, elem_id="label-history")
        editor = gr.ImageEditor(label="Current: paint the anomaly", type="numpy", image_mode="RGBA", format="png",
                                sources=("upload", "clipboard"), layers=False, transforms=(),
                                brush=gr.Brush(colors=[BRUSH], default_color=BRUSH, color_mode="fixed", default_size=BRUSH_SIZE),
                                eraser=gr.Eraser(), height=480, elem_id="label-editor")
    with gr.Row(equal_height=True):
        model_dd = gr.Dropdown(checkpoints, value=checkpoints[0][1] if checkpoints else None, label="Model (depth)",
                               interactive=bool(checkpoints), scale=2)
        threshold_sl = gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="Threshold", scale=2)
        assist_btn = gr.Button("Start from the model" if checkpoints else "Start from the model (no checkpoint found)",
                               interactive=bool(checkpoints), scale=1)
    with gr.Row(equal_height=True):
        annotator_tb = gr.Textbox(label="Your name", placeholder="e.g. alice", max_lines=1, max_length=64, scale=1,
                                  elem_id="label-annotator")
        type_dd = gr.Dropdown(list(ANOMALY_TYPES), value=None, label="Anomaly type", scale=1, elem_id="label-type")
        note_tb = gr.Textbox(label="Note (optional)", max_lines=3, scale=2)
    with gr.Row():
        save_btn = gr.Button("Save", variant="primary", elem_id="label-save")
        skip_btn = gr.Button("Skip", variant="secondary", elem_id="label-skip")
    status_md = gr.Markdown(elem_id="label-status")
    # Per session: the queue pair on screen ({"hash", "source"}), the model that pre-filled the mask
    # ({"checkpoint", "hash"}), and the content hashes of the pairs this annotator skipped.
    pair_state = gr.State(None)
    assist_state = gr.State(None)
    skipped_state = gr.State([])

    def save_label(history, current_editor, annotator, anomaly_type, note, pair, assisted):
        try:
            current = _rgb((current_editor or {}).get("background"))
            if current is None:
                raise UserError("there is no current image: upload one into the editor (or take the next pair from the queue).")
            if history is None:
                raise UserError("there is no history image: upload one (or take the next pair from the queue).")
            if anomaly_type is None:
                raise UserError(f"choose the anomaly type (or '{NO_ANOMALY}').")
            mask = mask_from_editor(current_editor, current.shape[:2])
            pair_hash = content_hash(history, current)
            # Provenance only for the pair on screen: a pair uploaded since is an upload, painted by hand.
            source = pair["source"] if pair and pair.get("hash") == pair_hash else "upload"
            checkpoint = assisted["checkpoint"] if assisted and assisted.get("hash") == pair_hash else ""
            row = store.save(history, current, mask, annotator, anomaly_type, note or "", source, checkpoint)
        except UserError as e:
            raise gr.Error(f"Not saved: {e}", duration=None) from None
        hub.notify()
        painted = f"{int(mask.sum())} px painted" if mask.any() else "empty mask"
        return (f"**Saved** row `{row.id}` ({anomaly_type}, {painted}). The dataset now holds **{row.size}** labels; "
                f"{hub.status_text()}.")

    def load_next(skipped):
        item = queue.next_unlabelled(exclude=skipped or [])
        if item is None:
            done, total = queue.progress()
            held = queue.held_elsewhere()
            why = [f"{done} / {total} labelled"]
            if skipped:
                why.append(f"{len(skipped)} skipped by you")
            if held:
                why.append(f"{held} handed to other annotators in the last {queue.hold_s / 60:.0f} minutes")
            return (gr.skip(), gr.skip(), None, None, progress_text(),
                    f"No unlabelled pair is free in the queue ({'; '.join(why)}).")
        p = item.pair
        value = {"background": p.current, "layers": [], "composite": p.current}
        return (p.history, value, {"hash": item.content_hash, "source": item.source}, None, progress_text(p.name),
                f"Pair `{p.name}` loaded ({p.current.shape[1]}x{p.current.shape[0]}).")

    def skip(pair, skipped):
        skipped = list(skipped or [])
        if pair and pair.get("hash"):
            queue.release(pair["hash"])
            skipped.append(pair["hash"])
        if not queue.enabled:
            return (None, None, None, None, progress_text(), "Skipped: upload the next pair.", skipped)
        return (*load_next(skipped), skipped)

    def start_from_model(history, current_editor, ref, threshold):
        current = _rgb((current_editor or {}).get("background"))
        if history is None or current is None:
            raise gr.Error("Load a pair first: the model needs both the history and the current image.")
        if not ref:
            raise gr.Error("Choose a model.")
        from anodfdnet.metrics import binarize

        try:
            prob = predictor(ref).predict(history, current)
        except UserError as e:
            raise gr.Error(str(e)) from None
        mask = binarize(prob, float(threshold))
        layer = paint_layer(mask)
        value = {"background": current, "layers": [layer], "composite": composite(current, layer)}
        name = model_names.get(ref, ref)
        return value, {"checkpoint": name, "hash": content_hash(history, current)}, (
            f"The model **{name}** painted {100.0 * mask.mean():.1f}% of the image at threshold {threshold:.2f}: "
            "erase what is wrong, paint what it missed, then Save.")

    def after_save(pair, skipped):
        if pair and queue.enabled:  # a queue pair was saved: bring the next one, keep the Save message,
            return (*load_next(skipped)[:5], "", None)  # and make the annotator choose the next type afresh
        return (gr.skip(), gr.skip(), gr.skip(), gr.skip(), progress_text(), gr.skip(), gr.skip())

    page = gr.context.Context.root_block  # the app's Blocks: show the progress on every page load
    if page is not None:
        page.load(lambda: progress_text(), None, progress_md, api_visibility="private")
    inputs = [history_img, editor, annotator_tb, type_dd, note_tb, pair_state, assist_state]
    saved = save_btn.click(save_label, inputs, status_md, api_name="save_label")
    screen = [history_img, editor, pair_state, assist_state, progress_md]
    saved.success(after_save, [pair_state, skipped_state], [*screen, note_tb, type_dd], api_visibility="private")
    next_btn.click(load_next, [skipped_state], [*screen, status_md], api_visibility="private")
    skip_btn.click(skip, [pair_state, skipped_state], [*screen, status_md, skipped_state], api_visibility="private")
    assist_btn.click(start_from_model, [history_img, editor, model_dd, threshold_sl], [editor, assist_state, status_md],
                     api_visibility="private")

    return LabelTab(history=history_img, editor=editor, annotator=annotator_tb, anomaly_type=type_dd, note=note_tb,
                    save=save_btn, skip=skip_btn, next=next_btn, assist=assist_btn, model=model_dd, threshold=threshold_sl,
                    status=status_md, progress=progress_md, store=store, queue=queue, hub=hub)
