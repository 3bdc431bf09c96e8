"""The Review tab (Gradio): a reviewer walks labelled pairs, lowest agreement first, and records a verdict.

Wiring only: ``review.py`` chooses the pairs and writes the verdicts, ``identity.py`` says who may review.
Every event here is private (no API name) and, since anyone can still call it by ``fn_index``, each one
checks on the server that the caller is a reviewer (``ANODFDNET_REVIEWERS``: a signed-in account where
sign-in exists, else a typed name) before it reads or writes anything. The pair on screen and the
answers shown (their row ids) stay in the session's state on the server; a verdict applies to exactly
those answers. A corrected mask is read from the editor's value like the Label tab's paint.
"""
from __future__ import annotations

import html

import gradio as gr
import numpy as np

from anodfdnet.data.labels import ANOMALY_TYPES
from anodfdnet.errors import UserError

from . import identity
from .adapt_panel import build_adapt_panel
from .editor import ImageEditor
from .paint import composite, mask_from_layers, paint_layer
from .review import ReviewQueue, ReviewView
from .store import LabelStore
from .tab import read_editor_value

INTRO = """\
**Review labelled pairs.** For reviewers only (``ANODFDNET_REVIEWERS``). **Next pair to review** brings the
labelled pair whose annotators agree least. Look at each annotator's mask and their consensus (per-pixel
majority; a tie counts as anomalous), then **Accept** the consensus, **Reject** the pair, or correct the mask
in the editor and **Save correction**. Each verdict is a new row in the label dataset; training with
``--labels-policy accepted`` reads only accepted and corrected masks.
"""


# The masks' gallery (gr.Gallery of Gradio 6.31 draws square cells, the picture "cover"-cropped in them, the caption
# over its corner, four columns of at least 100 px and a fixed height that scrolls): here each whole picture is
# contained at its own aspect, the caption below it, as many columns of at least 240 px as fit (one on a phone),
# and the gallery as tall as its rows (issue 23). app.py adds this to the page's CSS.
CSS = """
#review-masks .grid-wrap { height: auto !important; min-height: 0 !important; max-height: none !important;
                           overflow: visible !important; }
#review-masks .grid-container { padding-top: 30px !important;  /* below the gallery's label, not under it */
                                grid-template-columns: repeat(auto-fill, minmax(min(100%, 240px), 1fr)) !important;
                                grid-template-rows: none !important; grid-auto-rows: auto !important; }
#review-masks .thumbnail-item { aspect-ratio: auto !important; height: auto !important; display: flex !important;
                                flex-direction: column; }
#review-masks .thumbnail-item > img { width: 100% !important; height: auto !important; max-height: 420px;
                                      object-fit: contain !important; }
#review-masks .caption-label { position: static !important; max-width: none !important; white-space: normal !important;
                               overflow-wrap: anywhere; text-align: center; border: 0 !important; border-radius: 0 !important;
                               opacity: 1 !important; }
@media (max-width: 640px) {  /* a phone: the answers' table breaks lines between words only, and scrolls sideways */
  #review-table table { display: block; overflow-x: auto; font-size: 0.9em; }
  #review-table th, #review-table td { word-break: normal !important; overflow-wrap: normal !important; hyphens: none;
                                       padding: 4px 6px; }
}
"""


def _error(message: str) -> gr.Error:
    text = message[:1].upper() + message[1:]
    return gr.Error(html.escape(text, quote=False), print_exception=False)


def _tint(current: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return composite(current, paint_layer(mask))


def _table(view: ReviewView) -> str:
    ag = view.agreement
    lines = [f"**{len(view.answers)}** answers; mask agreement (mean pairwise IoU) "
             + ("unknown (one answer)" if ag.mask is None else f"**{100 * ag.mask:.1f} %**")
             + ("" if ag.type is None else f", same anomaly type {100 * ag.type:.0f} %")
             + f"; consensus type **{view.consensus_type}**."]
    if view.verdict:
        lines.append(f"Reviewed before: **{view.verdict}** (new answers arrived since).")
    lines += ["", "| annotator | identity | type | IoU with consensus | gold IoU (pairs) |", "|---|---|---|---:|---:|"]
    for a in view.answers:
        iou, n = view.gold.get(a.annotator, (None, 0))
        gold = "" if not n else f"{'n/a' if iou is None else f'{100 * iou:.1f} %'} ({n})"  # reviewers only
        lines.append(f"| {html.escape(a.annotator, quote=False)} | {a.identity} | {a.anomaly_type} | {100 * a.iou_consensus:.1f} % | {gold} |")
    if ag.pairwise:
        lines += ["", "| pair of annotators | IoU |", "|---|---:|"]
        lines += [f"| {html.escape(a, quote=False)} / {html.escape(b, quote=False)} | {100 * v:.1f} % |"
                  for (a, b), v in ag.pairwise.items()]
    return "\n".join(lines)


def build_review_tab(store: LabelStore | None = None, k: int | None = None, oauth: bool | None = None) -> dict:
    """Render the Review tab into the current Blocks context (inside ``gr.Tab``); returns its components.

    store: default the one ANODFDNET_LABEL_DIR names; k: default ANODFDNET_LABELS_PER_PAIR; oauth: whether
    sign-in exists (default ``identity.oauth_available()``)."""
    from anodfdnet.data.labels import labels_per_pair

    store = store or LabelStore()
    k = labels_per_pair() if k is None else k
    oauth = identity.oauth_available() if oauth is None else oauth
    queue = ReviewQueue(store, k)

    gr.Markdown(INTRO)
    with gr.Row(equal_height=True):
        if oauth:
            gr.LoginButton(scale=0, min_width=240)
        reviewer_tb = gr.Textbox(label="Reviewer name", max_lines=1, max_length=64, visible=not oauth, scale=1,
                                 elem_id="review-name")
        next_btn = gr.Button("Next pair to review", variant="secondary", scale=0, min_width=200, elem_id="review-next")
    status_md = gr.Markdown(elem_id="review-status")
    with gr.Row(equal_height=False):
        history_img = gr.Image(label="History", type="numpy", interactive=False, format="png", height=360,
                               elem_id="review-history")
        current_img = gr.Image(label="Current", type="numpy", interactive=False, format="png", height=360,
                               elem_id="review-current")
    masks_gallery = gr.Gallery(label="Each annotator's mask, and the consensus", columns=4, height="auto", format="png",
                               object_fit="contain", elem_id="review-masks")
    table_md = gr.Markdown(elem_id="review-table")
    with gr.Row(equal_height=False):
        editor = ImageEditor(label="Corrected mask (starts from the consensus)", type="numpy", image_mode="RGBA",
                             format="png", sources=(), layers=False, transforms=(), height=420, elem_id="review-editor")
        with gr.Column():
            type_dd = gr.Dropdown(list(ANOMALY_TYPES), value=None, label="Anomaly type of the correction",
                                  elem_id="review-type")
            note_tb = gr.Textbox(label="Note (optional)", max_lines=3, elem_id="review-note")
            accept_btn = gr.Button("Accept consensus", variant="primary", elem_id="review-accept")
            reject_btn = gr.Button("Reject", variant="stop", elem_id="review-reject")
            correct_btn = gr.Button("Save correction", variant="secondary", elem_id="review-correct")
    state = gr.State(None)  # {"hash", "rows"}: the pair on screen and the answers shown, kept on the server
    adapt = build_adapt_panel(store, reviewer_tb, oauth)

    def show(view: ReviewView | None, message: str):
        if view is None:
            return (None, None, [], "", None, None, None, message)
        gallery = [(_tint(view.current, a.mask), f"{a.annotator}: {a.anomaly_type}, IoU {100 * a.iou_consensus:.0f} %")
                   for a in view.answers]
        gallery.append((_tint(view.current, view.consensus), f"consensus: {view.consensus_type}"))
        layer = paint_layer(view.consensus)
        value = {"background": view.current, "layers": [layer], "composite": composite(view.current, layer)}
        return (view.history, view.current, gallery, _table(view), value, view.consensus_type,
                {"hash": view.content_hash, "rows": view.row_ids}, message)

    outputs = [history_img, current_img, masks_gallery, table_md, editor, type_dd, state, status_md]

    def who(profile, name) -> identity.Who:
        try:
            return identity.reviewer(profile, name if isinstance(name, str) else None, oauth=oauth)
        except UserError as e:
            raise _error(f"Not allowed: {e}") from None

    def next_pair(name, profile: gr.OAuthProfile | None):
        person = who(profile, name)
        view = queue.next_for(person.name)
        if view is None:
            return show(None, f"No pair is waiting for review (pairs need {k} label{'s' if k > 1 else ''} first).")
        waiting = len(queue.waiting())
        return show(view, f"Reviewing as **{html.escape(person.name, quote=False)}**: {waiting} pair(s) waiting.")

    def decide(on_screen, person: identity.Who, verdict: str, note, mask=None, anomaly_type=None):
        try:
            if not on_screen or not on_screen.get("hash"):
                raise UserError("load a pair first (Next pair to review).")
            note = note if isinstance(note, str) else ""
            if anomaly_type is not None and not isinstance(anomaly_type, str):
                raise UserError("the anomaly type must be text.")
            row = queue.decide(on_screen["hash"], list(on_screen["rows"]), person.name, person.identity, verdict,
                               mask, anomaly_type, note)
        except UserError as e:
            raise _error(f"Not saved: {e}") from None
        done = {"accept": "accepted", "reject": "rejected", "correct": "corrected"}[verdict]
        view = queue.next_for(person.name)
        msg = f"**{done.capitalize()}**: row `{row.id}` saved."
        return show(view, msg + (" Next pair loaded." if view is not None else " No other pair is waiting for review."))

    def accept(name, note, on_screen, profile: gr.OAuthProfile | None):
        return decide(on_screen, who(profile, name), "accept", note)

    def reject(name, note, on_screen, profile: gr.OAuthProfile | None):
        return decide(on_screen, who(profile, name), "reject", note)

    def correct(name, value, anomaly_type, note, on_screen, profile: gr.OAuthProfile | None):
        person = who(profile, name)  # before anything of the request is read
        try:
            if not on_screen or not on_screen.get("hash"):
                raise UserError("load a pair first (Next pair to review).")
            _, layers = read_editor_value(editor, value, "corrected mask")
            shape = queue.view(on_screen["hash"], on_screen["rows"]).current.shape[:2]
            mask = mask_from_layers(layers, shape)
        except UserError as e:
            raise _error(f"Not saved: {e}") from None
        return decide(on_screen, person, "correct", note, mask, anomaly_type)

    # Progress on the status line, never over the editor (see annotate/tab.py: the overlay can hide the canvas).
    on_status = {"api_visibility": "private", "show_progress_on": [status_md]}
    next_btn.click(next_pair, [reviewer_tb], outputs, **on_status)
    accept_btn.click(accept, [reviewer_tb, note_tb, state], outputs, **on_status)
    reject_btn.click(reject, [reviewer_tb, note_tb, state], outputs, **on_status)
    correct_btn.click(correct, [reviewer_tb, editor, type_dd, note_tb, state], outputs, preprocess=False, **on_status)
    return {"next": next_btn, "accept": accept_btn, "reject": reject_btn, "correct": correct_btn, "status": status_md,
            "editor": editor, "queue": queue, "store": store, "adapt": adapt}
