"""The Label tab (Gradio): paint what is anomalous in the current image; Save adds a row to the label dataset.

Wiring only: the store (``store.py``), the paint-layer rule (``paint.py``), the Hub sync
(``hub_sync.py``), the queue (``queue.py``), who is saving (``identity.py``), the summary panel
(``summary.py``) and the model do the work. Where sign-in exists (a Space with ``hf_oauth: true``) the tab
shows "Sign in with Hugging Face" and attributes saves to the signed-in account (``gr.OAuthProfile``,
injected by Gradio from its signed session cookie, never sent by the client); elsewhere the typed name. Images are read by
``anodfdnet.data.uploads`` from what arrived with the request (the editor's canvas blobs, or files Gradio
moved into its upload cache), checked against the size limits from their headers before decoding; a
crafted path is refused. The mask is read from the editor's value when Save is clicked (see
``paint.py`` for the accepted layer forms). The Save endpoint is public as ``/save_label``::

    client.predict(handle_file("history.png"),
                   {"background": handle_file("current.png"), "layers": [handle_file("mask_layer.png")], "composite": None},
                   "alice", "oil leak", "a note", api_name="/save_label")

(the name is used where sign-in does not exist; on a Space with sign-in an API call is anonymous.)

The other events are private (no API name) but reachable by anyone with their ``fn_index``, as every
event the page uses is: each validates its inputs as if they were hostile (model names from the
list, never paths; thresholds as numbers; images through the upload reader).
"""
from __future__ import annotations

import html
import os
import threading
from collections.abc import Callable

import gradio as gr
import numpy as np

from anodfdnet.data import uploads
from anodfdnet.errors import UserError
from anodfdnet.data.labels import ANOMALY_TYPES, NO_ANOMALY

from anodfdnet.data.label_policies import mask_iou
from demo.latest import LatestRuns, newest_only

from . import identity
from .editor import ImageEditor
from .hub_sync import HubSync
from .paint import BRUSH_ALPHA, BRUSH_RGB, box_mask, composite, mask_from_layers, paint_layer, parse_box
from .queue import LabelQueue
from .rate_limit import SaveLimit
from .checks import MAX_SIDE, MIN_SIDE
from .session_log import SessionLog
from .store import LabelStore
from .summary import PublicFigures, plural, row_counts
from .uncertainty import UncertaintyScores

BRUSH_SIZE = 6  # radius in image pixels; the brush-size slider (or the brush menu, or [ and ]) changes it
MAX_BRUSH_SIZE = 50
BRUSH = f"rgba({BRUSH_RGB[0]}, {BRUSH_RGB[1]}, {BRUSH_RGB[2]}, {BRUSH_ALPHA})"
LIMITS = uploads.Limits.from_env(min_side=MIN_SIDE, max_side=MAX_SIDE)

INTRO = """\
**Label a pair.** Load a pair (upload both images, or **Next pair** from the queue), then paint over
everything that is anomalous in the *current* image: a foreign body, a missing or loose part, a leak, a
crack. Use the brush (its size on the slider), the eraser, undo or clear, or the **Box tool** (drag a
rectangle on the image: it is filled). **Start from the model** paints the model's guess for you to
correct. Pick the anomaly type (**no anomaly** with an empty mask is a valid label too), give your name (or
sign in, where the button is shown), and **Save**. Each save adds one row to the label dataset; saving a
pair you labelled before replaces your earlier answer for training. **Previous pair** goes back to the pair
before, to change your answer.
"""

# What the page's keys do (label_page.js owns the keys; this is the line the page shows).
SHORTCUTS = ("**Keys** (not while typing in a text box): **S** save · **N** next pair · **P** previous pair · "
             "**Z** or **Ctrl+Z** undo · **B** brush · **E** eraser · **X** box tool · **[** / **]** smaller / larger brush")

__all__ = ["BRUSH", "BRUSH_SIZE", "LabelTab", "SHORTCUTS", "build_tab", "composite", "paint_layer"]


def _error(message: str, **kwargs) -> gr.Error:
    """A gr.Error whose text is escaped: Gradio shows it as HTML, and messages quote the visitor's text."""
    text = message[:1].upper() + message[1:]
    return gr.Error(html.escape(text, quote=False), print_exception=False, **kwargs)


def _session_block(component):
    """The session's instance of ``component`` (Gradio keeps one per session once an event replaced it)."""
    from gradio.context import LocalContext

    config = LocalContext.blocks_config.get(None)
    block = config.blocks.get(component._id) if config is not None else None
    return block if isinstance(block, type(component)) else component


def _text(value, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UserError(f"the {what} must be text.")
    return value


def _threshold(value) -> float:
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise UserError(f"the threshold must be a number between 0 and 1, got {str(value)[:40]!r}.") from None
    if not 0.0 <= t <= 1.0:
        raise UserError(f"the threshold must lie between 0 and 1, got {t:g}.")
    return t


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


def read_editor_value(editor, value, what: str = "current") -> tuple[np.ndarray | None, list[np.ndarray]]:
    """(background image, paint layers as stored) from an ImageEditor's raw value (``preprocess=False``): the
    canvas blobs the page uploaded (``{"id": ...}``, kept by the session's copy of ``editor``), or files
    (``{"background": FileData, "layers": [FileData, ...]}``), each read by ``anodfdnet.data.uploads``."""
    if value is None:
        return None, []
    if not isinstance(value, dict):
        raise uploads.refused(what)
    if value.get("id") is not None:
        blobs = _session_block(editor).blob_storage.pop(str(value["id"]), None)
        if blobs is None:
            raise UserError("the painted image did not reach the server; paint again or reload the page.")
        background, layers = blobs.background, list(blobs.layers or [])
    else:
        background, layers = value.get("background"), value.get("layers") or []
        if not isinstance(layers, list):
            raise uploads.refused("paint layer")
    root = gr.utils.get_upload_folder()
    current = None if background is None else uploads.read_upload(background, what, root, LIMITS)
    read = [uploads.read_upload_array(layer, "paint layer", root, LIMITS) for layer in layers if layer is not None]
    return current, read


def holder_of(who: "identity.Who", request) -> str:
    """Whose hold a queue pair is: the account when signed in (one hold across its sessions), else the session."""
    if who.identity == "hf":
        return f"hf:{who.name}"
    return f"session:{getattr(request, 'session_hash', None) or ''}"


def _session(request) -> str:
    return getattr(request, "session_hash", None) or ""


def _checkpoint_choices() -> list[tuple[str, str]]:
    """(menu label, reference) of every checkpoint found; the reference stays on the server."""
    from anodfdnet.checkpoint import list_checkpoints

    return [(f"{i.name} (depth {i.config.depth})", str(i.path)) for i in list_checkpoints()]


def _calibrated_threshold(reference: str | None) -> float:
    """The checkpoint's calibrated threshold (the one that maximised its validation F1), 0.5 if unknown."""
    from anodfdnet.checkpoint import read_info

    try:
        return round(read_info(reference).threshold, 2) if reference else 0.5
    except (UserError, OSError):
        return 0.5


class LabelTab:
    """The Label tab's components and services, as ``build_tab`` returns them (for composing and tests)."""

    def __init__(self, **parts):
        self.__dict__.update(parts)


_ranking_lock = threading.Lock()
QUEUE_ORDERS = ("queue", "uncertain")


def queue_order() -> str:
    """ANODFDNET_QUEUE_ORDER: ``queue`` (the queue's order, the default) or ``uncertain`` (the pairs the app's
    default model is least sure about first)."""
    order = (os.environ.get("ANODFDNET_QUEUE_ORDER") or "queue").strip().lower()
    if order not in QUEUE_ORDERS:
        raise UserError(f"ANODFDNET_QUEUE_ORDER must be one of {', '.join(QUEUE_ORDERS)}, not {order!r}.")
    return order


def build_tab(store: LabelStore | None = None, queue: LabelQueue | None = None, hub: HubSync | None = None,
              checkpoints: list[tuple[str, str]] | None = None, predictor: Callable[[str], object] | None = None,
              oauth: bool | None = None, default_model: str | None = None) -> LabelTab:
    """Render the Label tab's components into the current Blocks context (call it inside ``gr.Tab``).

    store, queue, hub: default to the ones the environment names (ANODFDNET_LABEL_DIR, ANODFDNET_QUEUE,
    ANODFDNET_LABELS_PER_PAIR, ANODFDNET_GOLD, HF_TOKEN + ANODFDNET_DATASET_REPO); the Hub worker is
    started here. checkpoints: (label, reference) choices for "Start from the model" (default: every
    checkpoint found); the page shows and sends back only the model names (the label up to " ("), the
    references stay here. predictor: reference -> object with ``predict(history, current) -> prob``; pass
    the app's shared one to load each model once. oauth: whether sign-in exists (default:
    ``identity.oauth_available()``, a Space with ``hf_oauth: true``). default_model: the model name "Start from
    the model" starts with (app.py passes the Detect tab's default; else the first checkpoint).
    """
    store = store or LabelStore()
    queue = queue if queue is not None else LabelQueue(store)
    hub = (hub or HubSync(store)).start()
    checkpoints = _checkpoint_choices() if checkpoints is None else checkpoints
    predictor = predictor or _Predictors()
    oauth = identity.oauth_available() if oauth is None else oauth
    references = {label.split(" (")[0]: ref for label, ref in checkpoints}  # model name -> server-side reference
    save_limit = SaveLimit()  # ANODFDNET_SAVES_PER_MINUTE per identity and per session
    log = SessionLog()  # what each session was served and saved: "Previous pair" goes back through it
    reviewers = bool(identity.reviewers())
    upload_root = gr.utils.get_upload_folder

    order = queue_order()
    ranking: list[UncertaintyScores] = []  # with ANODFDNET_QUEUE_ORDER=uncertain: started at the first Next pair

    def uncertainty_scores() -> UncertaintyScores | None:
        """The default model's uncertainty over the queue, scored in a background thread from the first Next pair."""
        if order != "uncertain" or not queue.enabled or not references:
            return None
        with _ranking_lock:
            if not ranking:
                name = default_model if default_model in references else next(iter(references))
                ranking.append(UncertaintyScores(predictor(references[name])))
                ranking[0].start(len(queue), queue.pair_at)
            return ranking[0]

    figures = PublicFigures(store, queue, hub)  # what every visitor sees: no gold scores, delayed with gold pairs

    def holds_text(labels: int, reviews: int) -> str:
        """'The dataset holds **N** labels' (and its reviews where reviewers exist): review rows are not labels."""
        text = f"The dataset holds **{plural(labels, 'label').replace(' ', '** ', 1)}"
        return text + (f" and {plural(reviews, 'review')}" if reviewers or reviews else "")

    def progress_text(on_screen: str | None = None) -> str:
        if not queue.enabled:
            return f"No queue is set (ANODFDNET_QUEUE): upload a pair. {holds_text(*row_counts(store))}."
        some, done, total, labels, reviews = figures.progress()
        text = f"Queue `{html.escape(queue.display_name, quote=False)}`: **{done} / {total}** pairs labelled"
        if queue.k > 1:
            text += f" by {queue.k} people ({some} by at least one)"
        text += f". {holds_text(labels, reviews)}"
        text += f" (figures updated every {figures.refresh_s / 60:g} minutes)." if figures.refresh_s else "."
        return text + (f" On screen: pair `{html.escape(on_screen, quote=False)}`." if on_screen else "")

    def summary_text() -> str:
        try:
            return figures.summary_markdown()
        except UserError as e:
            return html.escape(f"No summary: {e}", quote=False)

    gr.Markdown(INTRO)
    with gr.Row(equal_height=True):
        if oauth:
            gr.LoginButton(scale=0, min_width=240)
        whoami_md = gr.Markdown(elem_id="label-whoami")
    with gr.Row(equal_height=False, elem_id="label-nav"):
        next_btn = gr.Button("Next pair", variant="secondary", interactive=queue.enabled, scale=0, min_width=120,
                             elem_id="label-next")
        prev_btn = gr.Button("Previous pair", variant="secondary", interactive=queue.enabled, scale=0, min_width=120,
                             elem_id="label-previous")
        progress_md = gr.Markdown(elem_id="label-progress")
    with gr.Row(equal_height=False):
        history_img = gr.Image(label="History (earlier, known good)", type="numpy", image_mode="RGB", format="png",
                               sources=("upload", "clipboard"), height=480, elem_id="label-history")
        editor = ImageEditor(label="Current: paint the anomaly", type="numpy", image_mode="RGBA", format="png",
                             sources=("upload", "clipboard"), layers=False, transforms=(),
                             brush=gr.Brush(colors=[BRUSH], default_color=BRUSH, color_mode="fixed", default_size=BRUSH_SIZE),
                             eraser=gr.Eraser(default_size=BRUSH_SIZE), height=480, elem_id="label-editor")
    # The page's helpers (label_page.js, loaded with the page): the slider sets the editor's brush and eraser
    # size, the box tool turns a drag on the image into the box field and presses Add box.
    with gr.Row(equal_height=True, elem_id="label-tools"):
        gr.Slider(1, MAX_BRUSH_SIZE, value=BRUSH_SIZE, step=1, label="Brush / eraser size (radius, image pixels)",
                  interactive=True, scale=2, elem_id="label-brush-size")
        gr.Button("Box tool (X)", variant="secondary", scale=0, min_width=130, elem_id="label-box-tool")
        box_tb = gr.Textbox(label="Box: x0 y0 x1 y1 (image pixels; drag with the box tool, or type)", max_lines=1,
                            max_length=120, scale=2, elem_id="label-box")
        box_btn = gr.Button("Add box", variant="secondary", scale=0, min_width=100, elem_id="label-box-add")
    with gr.Row(equal_height=True):
        names = list(references)
        first = default_model if default_model in references else (names[0] if names else None)
        model_dd = gr.Dropdown([(label, label.split(" (")[0]) for label, _ in checkpoints],
                               value=first, label="Model (depth)",
                               interactive=bool(checkpoints), scale=2, elem_id="label-model")
        threshold_sl = gr.Slider(0.01, 0.99, value=_calibrated_threshold(references.get(first) if first else None), step=0.01,
                                 label="Threshold", info="the chosen model's calibrated threshold to start with", scale=2,
                                 elem_id="label-threshold")
        assist_btn = gr.Button("Start from the model" if checkpoints else "Start from the model (no checkpoint found)",
                               interactive=bool(checkpoints), scale=1)
    with gr.Row(equal_height=True):
        annotator_tb = gr.Textbox(label="Your name", placeholder="e.g. alice", max_lines=1, max_length=64, scale=1,
                                  visible=not oauth, elem_id="label-annotator")
        type_dd = gr.Dropdown(list(ANOMALY_TYPES), value=None, label="Anomaly type", scale=1, elem_id="label-type")
        note_tb = gr.Textbox(label="Note (optional)", max_lines=3, scale=2, elem_id="label-note")
    with gr.Row():
        save_btn = gr.Button("Save", variant="primary", elem_id="label-save")
        skip_btn = gr.Button("Skip", variant="secondary", elem_id="label-skip")
    gr.Markdown(SHORTCUTS, elem_id="label-keys")
    status_md = gr.Markdown(elem_id="label-status")
    with gr.Accordion("Labelling so far", open=False):
        summary_md = gr.Markdown(elem_id="label-summary")
    # Per session, on the server (a client cannot set a State): the queue pair on screen ({"hash", "source"}),
    # the model that pre-filled the mask ({"checkpoint", "hash"}), and the content hashes of the pairs this
    # annotator skipped. (What the session was served and saved, for Previous pair: ``log``.)
    pair_state = gr.State(None)
    assist_state = gr.State(None)
    skipped_state = gr.State([])

    def whoami_text(profile: gr.OAuthProfile | None, request: gr.Request) -> str:
        if not oauth:
            text = "Sign-in is not available here: your typed name is recorded (not verified)."
            return text + (" Saving needs sign-in (ANODFDNET_REQUIRE_LOGIN=1), so saves are refused."
                           if identity.login_required() else "")
        account = identity.username(profile)
        if account:
            return f"Saving as **{html.escape(account, quote=False)}** (signed in with Hugging Face)."
        if identity.login_required():
            return "**Sign in with Hugging Face** to label: this app saves only labels of signed-in annotators."
        who = identity.who(None, None, _session(request), oauth=True, require=False)
        return f"Not signed in: your labels are saved as **{who.name}**. Sign in to have them attributed to your account."

    def read_history(payload) -> np.ndarray | None:
        return None if payload is None else uploads.read_upload(payload, "history", upload_root(), LIMITS)

    def read_editor(value) -> tuple[np.ndarray | None, list[np.ndarray]]:
        return read_editor_value(editor, value)

    def save_label(history, current_editor, annotator, anomaly_type, note, pair, assisted,
                   profile: gr.OAuthProfile | None, request: gr.Request):
        slots = ()
        try:
            who = identity.who(profile, _text(annotator, "annotator name"), _session(request), oauth=oauth)
            slots = save_limit.take(f"{who.identity}:{who.name}", f"session:{_session(request)}")
            current, layers = read_editor(current_editor)
            if current is None:
                raise UserError("there is no current image: upload one into the editor (or take the next pair from the queue).")
            history = read_history(history)
            if history is None:
                raise UserError("there is no history image: upload one (or take the next pair from the queue).")
            if anomaly_type is None:
                raise UserError(f"choose the anomaly type (or '{NO_ANOMALY}').")
            anomaly_type = _text(anomaly_type, "anomaly type")
            note = _text(note, "note")
            mask = mask_from_layers(layers, current.shape[:2])
            pair_hash = store.pair_hash(history, current)
            # Provenance only for the pair on screen: a pair uploaded since is an upload, painted by hand.
            source = pair["source"] if pair and pair.get("hash") == pair_hash else "upload"
            checkpoint = assisted["checkpoint"] if assisted and assisted.get("hash") == pair_hash else ""
            gold = queue.gold_mask(pair_hash)  # a gold pair is gold however it arrived: it never trains
            kind, gold_iou = ("gold", mask_iou(mask, gold)) if gold is not None and gold.shape == mask.shape else ("label", None)
            row = store.save(history, current, mask, who.name, anomaly_type, note, source, checkpoint,
                             identity=who.identity, kind=kind, gold_iou=gold_iou)
        except UserError as e:
            save_limit.give_back(slots)
            raise _error(f"Not saved: {e}", duration=None) from None
        queue.release(holder_of(who, request))
        log.saved(_session(request), pair_hash, row.id)
        hub.notify()
        return saved_text(row, anomaly_type, mask, who)

    def saved_text(row, anomaly_type, mask, who) -> str:
        painted = f"{int(mask.sum())} px painted" if mask.any() else "empty mask"
        text = (f"**Saved** row `{row.id}` ({anomaly_type}, {painted}) as {html.escape(who.label, quote=False)}. "
                f"{holds_text(*row_counts(store)).replace('holds', 'now holds', 1)}; {hub.status_text()}.")
        if row.replaces:
            earlier = ", ".join(f"`{r}`" for r in row.replaces)
            text += (f" You had labelled this pair before (row{'s' if len(row.replaces) > 1 else ''} {earlier}): "
                     "this label replaces that answer for training; the earlier rows stay in the dataset.")
        if row.history_resized:
            w, h = row.history_resized
            text += (f" The history ({w}x{h}) was stored resized to the current image's size, as training reads it.")
        return text

    def show(item, layers=()) -> tuple:
        """(history, editor value, pair state, assist state, progress) that put a queue pair on screen."""
        p = item.pair
        value = {"background": p.current, "layers": list(layers), "composite": None}
        return (p.history, value, {"hash": item.content_hash, "source": item.source}, None,
                progress_text(item.display_name))

    def load_next(annotator, skipped, profile: gr.OAuthProfile | None, request: gr.Request):
        try:
            # No name yet and no login needed: any pair (the name given at Save is checked then).
            who = identity.queue_identity(profile, _text(annotator, "annotator name"), _session(request), oauth=oauth)
            name = who.name or None
        except UserError as e:
            raise _error(str(e)) from None
        holder = holder_of(who, request)
        item = queue.next_for(name, holder, exclude=skipped or [], uncertainty=uncertainty_scores())
        if item is None:
            _, done, total, *_ = figures.progress()
            held = queue.held_elsewhere(holder)
            why = [f"{done} / {total} have their {queue.k} label{'s' if queue.k > 1 else ''}"]
            if skipped:
                why.append(f"{len(skipped)} skipped by you")
            if held:
                why.append(f"{held} handed to other annotators in the last {queue.hold_s / 60:.0f} minutes")
            return (gr.skip(), gr.skip(), None, None, progress_text(),
                    f"No pair is free for you in the queue ({'; '.join(why)}).")
        p, name = item.pair, item.display_name
        log.served(_session(request), item.content_hash, item.index, item.gold)
        return (*show(item), f"Pair `{html.escape(name, quote=False)}` loaded ({p.current.shape[1]}x{p.current.shape[0]}).")

    def skip(annotator, pair, skipped, profile: gr.OAuthProfile | None, request: gr.Request):
        skipped = list(skipped or [])
        if pair and pair.get("hash"):
            skipped.append(pair["hash"])
        if not queue.enabled:
            return (None, None, None, None, progress_text(), "Skipped: upload the next pair.", skipped)
        return (*load_next(annotator, skipped, profile, request), skipped)

    def previous_pair(pair, request: gr.Request):
        """The queue pair this session was served before the one on screen, with the answer this session saved
        for it in the editor (``session_log.py``): never a pair served to another session."""
        here = pair.get("hash") if isinstance(pair, dict) else None
        entry = log.before(_session(request), here)
        if entry is None:
            raise _error("There is no previous pair: Previous pair goes back through the pairs this page was "
                         "served from the queue (Next pair, Skip, Save).")
        item = queue.item_again(entry.index, entry.gold, entry.content_hash)
        if item is None:
            raise _error("The previous pair is no longer in the queue.")
        name = html.escape(item.display_name, quote=False)
        row = log.row(_session(request), item.content_hash)
        mask = None
        if row is not None:
            try:
                mask = store.masks([row])[0]
            except (KeyError, UserError, OSError):
                mask = None
        if mask is None or mask.shape != item.pair.current.shape[:2]:
            return (*show(item), f"Back to pair `{name}`: label it and Save.")
        return (*show(item, [paint_layer(mask)]),
                f"Back to pair `{name}`, with the answer you saved in this session (row `{row}`) in the editor: "
                "change it and Save. It is saved as a new row, which replaces that answer for training; the "
                "earlier row stays in the dataset.")

    def add_box(current_editor, box):
        """The editor's paint with the filled rectangle ``box`` added (what the box tool sends)."""
        try:
            current, layers = read_editor(current_editor)
            if current is None:
                raise UserError("load a pair first: a box is drawn on the current image.")
            shape = current.shape[:2]
            rect = parse_box(_text(box, "box"), shape)
            mask = mask_from_layers(layers, shape) | box_mask(shape, rect)
        except UserError as e:
            raise _error(str(e)) from None
        x0, y0, x1, y1 = rect
        value = {"background": current, "layers": [paint_layer(mask)], "composite": None}
        return value, "", f"Box ({x0}, {y0}) to ({x1}, {y1}) added: {x1 - x0 + 1}x{y1 - y0 + 1} px filled."

    def start_from_model(history, current_editor, name, threshold):
        try:
            current, _ = read_editor(current_editor)
            history = read_history(history)
            if history is None or current is None:
                raise UserError("load a pair first: the model needs both the history and the current image.")
            if not name:
                raise UserError("choose a model.")
            if not isinstance(name, str) or name not in references:
                raise UserError(f"there is no model '{str(name)[:80]}': choose one of {', '.join(references) or 'none'}.")
            threshold = _threshold(threshold)
            from anodfdnet.metrics import binarize

            try:
                prob = predictor(references[name]).predict(history, current)
            except UserError:
                raise UserError(f"the model '{name}' could not run on the server; its log says why.") from None
        except UserError as e:
            raise _error(str(e)) from None
        mask = binarize(prob, threshold)
        value = {"background": current, "layers": [paint_layer(mask)], "composite": None}
        return value, {"checkpoint": name, "hash": store.pair_hash(history, current)}, (
            f"The model **{name}** painted {100.0 * mask.mean():.1f}% of the image at threshold {threshold:.2f}: "
            "erase what is wrong, paint what it missed, then Save.")

    def pair_changed():
        """The person uploaded or cleared the history, or cleared the current image (private): nothing to do but be
        the session's newest run."""

    def after_save(annotator, pair, skipped, profile: gr.OAuthProfile | None, request: gr.Request):
        if pair and queue.enabled:  # a queue pair was saved: bring the next one, keep the Save message,
            try:
                nxt = load_next(annotator, skipped, profile, request)[:5]
            except gr.Error:
                nxt = (None, None, None, None, progress_text())
            return (*nxt, "", None, summary_text())  # and make the annotator choose the next type afresh
        # An uploaded pair: clear it, so a second click cannot save it again by accident.
        return (None, None, None, None, progress_text(), "", None, summary_text())

    page = gr.context.Context.root_block  # the app's Blocks: show the progress on every page load
    if page is not None:
        page.load(lambda: (progress_text(), summary_text()), None, [progress_md, summary_md], api_visibility="private")
        page.load(whoami_text, None, whoami_md, api_visibility="private")
    inputs = [history_img, editor, annotator_tb, type_dd, note_tb, pair_state, assist_state]
    saved = save_btn.click(save_label, inputs, status_md, api_name="save_label", preprocess=False)
    screen = [history_img, editor, pair_state, assist_state, progress_md]
    # The events that change the pair or the mask on screen: of a session's runs in flight only the newest fills
    # the page (demo.latest), so a model's answer or a pair that arrives late never lands beside another pair
    # (the history of one, the current image of another, saved as a pair that never existed).
    runs = LatestRuns()
    private = dict(api_visibility="private", show_progress_on=[status_md])
    # Progress shows on the status line, never over the editor: Gradio 6.31's page leaves an editor that an
    # event filled with its progress overlay on (pending, never completed), and that overlay sometimes hides
    # the whole canvas, so the person saw a blank editor with a spinner (issue 23) while the mask was there.
    saved.success(newest_only(after_save, 8, runs), [annotator_tb, pair_state, skipped_state],
                  [*screen, note_tb, type_dd, summary_md], api_visibility="private", show_progress_on=[progress_md])
    next_btn.click(newest_only(load_next, 6, runs), [annotator_tb, skipped_state], [*screen, status_md], **private)
    prev_btn.click(newest_only(previous_pair, 6, runs), [pair_state], [*screen, status_md], **private)
    skip_btn.click(newest_only(skip, 7, runs), [annotator_tb, pair_state, skipped_state],
                   [*screen, status_md, skipped_state], **private)
    assist_btn.click(newest_only(start_from_model, 3, runs), [history_img, editor, model_dd, threshold_sl],
                     [editor, assist_state, status_md], preprocess=False, **private)
    box_btn.click(newest_only(add_box, 3, runs), [editor, box_tb], [editor, box_tb, status_md], preprocess=False, **private)
    # A history image the person uploads or clears, or a current image the person clears, is newer than any answer
    # in flight: that answer leaves the screen alone. Not the editor's upload: Gradio 6.31's page sends it by itself
    # after every value an event puts in the editor (measured in this tab: twice, 0.7 to 3 s after the event ended,
    # one naming the file the server sent, one a re-encoded copy of the canvas, as a person's upload does), so it
    # overtook the events the person started meanwhile: a "Start from the model" or a Skip clicked within those
    # seconds of a new pair was dropped. A current image the person uploads while an answer is in flight can therefore be replaced by that
    # answer, which brings its own current image: the screen then shows the pair that answer was made for, its
    # history unchanged (an uploaded history still overtakes it).
    bump = newest_only(pair_changed, 0, runs)
    for event in (history_img.upload, history_img.clear, editor.clear):
        event(bump, None, None, api_visibility="private", queue=False, show_progress="hidden")
    # Another model: start from its calibrated threshold (an unknown name changes nothing).
    model_dd.change(lambda name: _calibrated_threshold(references[name]) if isinstance(name, str) and name in references
                    else gr.skip(), model_dd, threshold_sl, api_visibility="private", show_progress="hidden")

    return LabelTab(history=history_img, editor=editor, annotator=annotator_tb, anomaly_type=type_dd, note=note_tb,
                    save=save_btn, skip=skip_btn, next=next_btn, previous=prev_btn, box=box_tb, add_box=box_btn, assist=assist_btn, model=model_dd, threshold=threshold_sl,
                    status=status_md, progress=progress_md, summary=summary_md, whoami=whoami_md, store=store, queue=queue,
                    hub=hub, oauth=oauth)
