"""The inference tab: upload a history/current pair, run AnoDFDNet, move the threshold live.

Two named API endpoints (``gradio_client``):

``/predict`` (history, current, model, threshold) ->
    (heat map, overlay, mask, summary, figures, mask PNG, heat map PNG)
    history, current: image files (``handle_file(path)``); model: a checkpoint name ('lite-d4'), a
    Transformer depth ('4') or '' for the default; threshold in [0, 1]. The heat map and mask are
    PNG files, the overlay a JPEG; summary is Markdown; figures a dict (area, regions, boxes,
    inference time, device, alignment, ...). The probability map is kept in the caller's session.
    The history is aligned to the current first (``anodfdnet.align``) with the session's alignment choice
    (the page's menu, or ``/set_alignment``; ``auto`` until then): figures say how (``align_verdict``,
    ``uncovered_pct``), and pixels the history does not cover are 0 in the map, grey in the heat map.

``/set_alignment`` (alignment) -> ()
    The session's alignment for its next ``/predict`` calls: one of auto (the default), off, homography,
    affine, ecc. Like the page's alignment menu; one Client is one session.

``/rethreshold`` (threshold) -> (overlay, mask, summary, figures, mask PNG)
    Re-thresholds the probability map of the session's last ``/predict``, never running the model.
    A ``gradio_client.Client`` is one session: call ``/predict`` then ``/rethreshold`` on the same client.

In the browser the slider does not wait for the server: after Run, the page receives the current image
and a level map once (``demo.live``) and redraws overlay and mask itself on every move, exactly the
server's mask at each slider step; summary, figures and the mask download follow from a private event.
The page also shows the (aligned) history and the current in a comparison slider with the alignment's
verdict, and the heat map over the current image with an opacity slider, a legend and the regions' numbered
boxes; changing the model or the alignment re-runs the pair at once; only the newest run fills the page (``demo.latest``).

The other events (Run click, example click, live view, slider figures, model menu, alignment menu, opacity, the
comparison) are private: no API name, but reachable by fn_index like every event the page uses, so each
validates its inputs like the API does.

Errors a visitor causes (a missing or unreadable image, a file or image over the limits, an unknown
model) come back as one sentence (``gr.Error``); anything else is logged and reported without a
traceback. Nothing here keeps per-request data outside the session state and Gradio's cache.
"""
from __future__ import annotations

import functools
import html
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import gradio as gr
import numpy as np

from anodfdnet.align import MODES as ALIGN_MODES
from anodfdnet.align import check_mode
from anodfdnet.data import uploads
from anodfdnet.errors import UserError

from . import examples as gallery
from . import heat as heat_view
from . import live, models, render
from .latest import LatestRuns, newest_only

log = logging.getLogger("anodfdnet.demo")

LIMITS = uploads.Limits.from_env()  # ANODFDNET_MAX_PIXELS (per image), ANODFDNET_MAX_FILE_MB (per file)
MAX_PIXELS = LIMITS.max_pixels
MAX_FILE_MB = LIMITS.max_mb
MAX_FILE_BYTES = LIMITS.max_bytes
DEFAULT_THRESHOLD = 0.5
COMPARE_SIDE = 2048  # long side of the comparison slider's images
STATE_TTL_S = 3600  # a session's probability map is dropped an hour after its last use
# Probabilities are kept just below 1 so that threshold 1 means "nothing is anomalous" even where the
# float32 sigmoid saturated to exactly 1.0 (binarize marks prob >= threshold).
PROB_CAP = np.nextafter(np.float32(1.0), np.float32(0.0))

TITLE = "AnoDFDNet: find what changed for the worse between two photos of the same place"
INTRO = (
    "Give an earlier, known-good **history** photo (1.) and a **current** photo of the same scene (2.), "
    "then press **Run**: the history is aligned to the current view, and the model marks anomalous "
    "differences (a foreign body, a missing or loose part, a leak, a scratch) and ignores harmless ones "
    "such as lighting or a moved camera."
)
ALIGN_CHOICES = [
    ("auto: align when it can be trusted", "auto"), ("off: use the photos as they are", "off"),
    ("homography only", "homography"), ("affine only", "affine"), ("auto, refined by ECC", "ecc"),
]
assert [v for _, v in ALIGN_CHOICES] == [m for m in ("auto", "off", "homography", "affine", "ecc") if m in ALIGN_MODES]

@dataclass
class MapState:
    """What a session keeps after a run: enough to re-threshold without the model."""

    prob: np.ndarray  # float32 HxW at the current image's size, capped at PROB_CAP
    current: np.ndarray  # uint8 HxWx3
    meta: dict = field(default_factory=dict)  # checkpoint, depth, inference time, device, alignment, notes
    history: np.ndarray | None = None  # uint8 HxWx3: the history as the model saw it (aligned), the current's size
    valid: np.ndarray | None = None  # bool HxW: pixels the aligned history covers (None: all)


# ---------------------------------------------------------------------------------------------------
# Input


def _sentence(msg: str) -> str:
    return msg[:1].upper() + msg[1:] if msg else msg


def read_image(payload, role: str) -> np.ndarray:
    """Read one uploaded image as uint8 HxWx3, refusing files and images over the limits.

    Only what arrived with this request is read (``anodfdnet.data.uploads``): a file Gradio checked and moved
    into its upload cache, or bytes / a data URL (size-checked before decoding, never written to disk).
    A crafted path (no ``meta``, relative, outside the cache, through ``..`` or a symlink) is refused
    with one neutral sentence, whatever exists on disk."""
    if payload is None:
        other = "current" if role == "history" else "history"
        raise UserError(
            f"the {role} image is missing: give both a history image (1.) and a current image (2.) "
            f"(only the {other} one arrived)."
        )
    return uploads.read_upload(payload, role, gr.utils.get_upload_folder(), LIMITS)


def _threshold(value) -> float:
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise UserError(f"the threshold must be a number between 0 and 1, got {str(value)[:40]!r}.") from None
    if not 0.0 <= t <= 1.0:
        raise UserError(f"the threshold must lie between 0 and 1, got {t:g}.")
    return t


# ---------------------------------------------------------------------------------------------------
# Output


def _out_dir() -> Path:
    """A fresh folder in Gradio's cache: files there are served as they are and removed by
    the app's delete_cache schedule."""
    d = Path(gr.utils.get_upload_folder()) / "anodfdnet" / uuid.uuid4().hex
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write_overlay(img: np.ndarray, folder: Path, name: str = "overlay.jpg") -> str:
    path = folder / name
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise OSError("could not encode the overlay")
    path.write_bytes(buf.tobytes())
    return str(path)


def _threshold_outputs(state: MapState, threshold: float, overlay: bool = True, with_heat: float | None = None):
    """(overlay path, mask path, summary, figures, mask download) for one threshold; the overlay is
    None when not asked for (the page draws its own). ``with_heat`` (an opacity): also the heat map over
    the current image with the regions' boxes, as a sixth item."""
    result = render.render(state.prob, state.current, threshold)
    folder = _out_dir()
    overlay_path = _write_overlay(heat_view.mark_unknown(result.overlay, state.valid), folder) if overlay else None
    mask = str(render.write_png(result.mask, folder / "anomaly-mask.png"))
    figures = {**result.figures(), **state.meta}
    out = overlay_path, mask, render.format_summary(figures), figures, mask
    if with_heat is None:
        return out
    img = heat_view.heat_overlay(state.prob, state.current, state.valid, with_heat, result.regions)
    return (*out, _write_overlay(img, folder, "heat-over-current.jpg"))


def page_error(message: str, **kwargs) -> gr.Error:
    """A gr.Error whose text is escaped: Gradio shows it as HTML in a toast, and messages quote the
    visitor's own text (file names, model names), which must never become live markup."""
    return gr.Error(html.escape(_sentence(message), quote=False), print_exception=False, **kwargs)


def _user_errors(fn):
    """Turn UserError into a visible one-sentence gr.Error; log anything else, show no traceback."""

    @functools.wraps(fn)
    def wrapper(*args):
        try:
            return fn(*args)
        except gr.Error:
            raise
        except UserError as e:
            raise page_error(str(e)) from None
        except Exception:
            log.exception("%s failed", fn.__name__)
            raise gr.Error(
                "Something went wrong on the server while processing this pair; it has been logged. "
                "Other requests are not affected.",
                print_exception=False,
            ) from None

    return wrapper


# ---------------------------------------------------------------------------------------------------
# Event handlers (plain functions: the API endpoints are exactly these)


@_user_errors
def predict(history, current, model, threshold, align="auto"):
    align = _align(align)
    info = models.choose(model)
    threshold = _threshold(info.threshold if threshold is None else threshold)  # None: the model's calibrated one
    hist = read_image(history, "history")
    cur = read_image(current, "current")
    notes = []
    if hist.shape[:2] != cur.shape[:2]:
        notes.append(
            f"the history image ({hist.shape[1]}x{hist.shape[0]}) was resized to the current image's size "
            f"({cur.shape[1]}x{cur.shape[0]}); results are best when both show the same view at the same size."
        )
    pred, _ = models.shared_cache().run(info, hist, cur, align)
    prob = np.minimum(pred.prob, PROB_CAP)
    a = pred.alignment
    meta = {
        "checkpoint": info.name,
        "depth": info.config.depth,
        "inference_seconds": round(pred.seconds, 4),
        "device": pred.device,
        "inference_path": pred.path,
        "model_input": list(pred.input_shape),
        "align": a.mode, "aligned": a.aligned, "align_verdict": a.verdict(), "uncovered_pct": round(a.uncovered_pct, 3),
        "notes": notes,
    }
    state = MapState(prob, cur, meta, a.history, a.valid)
    heat = str(render.write_png(render.heatmap_rgb(prob, a.valid), _out_dir() / "heatmap.png"))
    overlay, mask, summary, figures, mask_file = _threshold_outputs(state, threshold)
    return heat, overlay, mask, summary, figures, mask_file, heat, state


@_user_errors
def rethreshold(state, threshold):
    if not isinstance(state, MapState):
        raise UserError("there is no anomaly map in this session yet: run the model first (the Run button, or /predict).")
    return _threshold_outputs(state, _threshold(threshold))


@_user_errors
def page_figures(state, threshold, opacity=heat_view.DEFAULT_OPACITY):
    """The page's slider (private): summary, figures, mask download and the heat map's boxes at the slider
    step the page drew.

    The page redraws overlay and mask itself (``demo.live``) at step round(100 * threshold); the
    figures are those of the same step, so what is drawn and what is written agree."""
    if not isinstance(state, MapState):
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    step = round(_threshold(threshold) * render.SLIDER_STEPS)
    _, _, summary, figures, mask_file, heat = _threshold_outputs(state, render.slider_threshold(step), False, _opacity(opacity))
    return summary, figures, mask_file, heat


def _align(value) -> str:
    """An alignment choice from a request: one of anodfdnet.align.MODES, else a one-sentence error."""
    if value is None:
        return "auto"
    if not isinstance(value, str):
        raise UserError("the alignment must be one of " + ", ".join(ALIGN_MODES) + ".")
    return check_mode(value)


@_user_errors
def page_rerun(history, current, model, threshold, align):
    """A new model or alignment chosen (private): run the pair again at once, if there is one."""
    if history is None or current is None:
        return tuple(gr.skip() for _ in range(8))
    return predict(history, current, model, threshold, align)


@_user_errors
def page_set_align(value):
    """The alignment menu (private): the session's choice, validated."""
    return _align(value)


@_user_errors
def page_view(state, threshold, opacity):
    """After a prediction (private): the comparison slider's two images, the alignment's verdict and the
    heat map over the current image (with the regions at this threshold)."""
    if not isinstance(state, MapState):
        return gr.skip(), gr.skip(), gr.skip()
    folder = _out_dir()
    hist, cur = state.history, state.current
    scale = COMPARE_SIDE / max(cur.shape[:2])
    if scale < 1:  # the comparison is for the eye: at most COMPARE_SIDE pixels on the long side
        size = (max(1, round(cur.shape[1] * scale)), max(1, round(cur.shape[0] * scale)))
        hist, cur = (cv2.resize(a, size, interpolation=cv2.INTER_AREA) for a in (hist, cur))
    pair = (str(render.write_png(hist, folder / "history-aligned.png")), str(render.write_png(cur, folder / "current.png")))
    step = round(_threshold(threshold) * render.SLIDER_STEPS)
    return pair, alignment_text(state.meta), _threshold_outputs(state, render.slider_threshold(step), False, _opacity(opacity))[5]


@_user_errors
def page_opacity(state, threshold, opacity):
    """The opacity slider (private): the heat map over the current image again."""
    if not isinstance(state, MapState):
        return gr.skip()
    step = round(_threshold(threshold) * render.SLIDER_STEPS)
    return _threshold_outputs(state, render.slider_threshold(step), False, _opacity(opacity))[5]


def _opacity(value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UserError("the opacity must be a number between 0 and 1.") from None
    if not 0.0 <= v <= 1.0:
        raise UserError("the opacity must lie between 0 and 1.")
    return v


def alignment_text(meta: dict) -> str:
    """Markdown: the alignment's verdict and the uncovered area, for a person judging the pair."""
    verdict = html.escape(str(meta.get("align_verdict", "")))
    text = f"**Alignment:** {verdict}."
    if float(meta.get("uncovered_pct", 0.0)) > 0:
        text += " The part not covered by the history is grey in the heat map and never counted as anomalous."
    return text + " Drag the handle across the pair above to compare the history (as the model saw it) with the current image."


@_user_errors
def page_live(state, threshold):
    """After a prediction (private): the live view's image and level map, sent to the page once."""
    if not isinstance(state, MapState):
        return None
    return live.live_value(state.prob, heat_view.mark_unknown(state.current, state.valid), _threshold(threshold), _out_dir())


def _model_menu():
    infos = models.available()
    default = models.default_choice(infos)
    return [(models.label(i), i.name) for i in infos], (default.name if default else None)


def _model_figures(name) -> str | object:
    """The line under the model menu: the chosen checkpoint's recorded validation figures."""
    try:
        return models.figures_text(models.choose(name))
    except UserError:
        return gr.skip()


def _model_threshold(name) -> float | object:
    """The slider's start for a model: its calibrated threshold (on the slider's 0.01 grid)."""
    try:
        return round(models.choose(name).threshold, 2)
    except UserError:
        return gr.skip()


# ---------------------------------------------------------------------------------------------------
# Layout


CSS = """
#anodfdnet-run { min-height: 3.2em; font-size: 1.1em; }
#model-choice input, #align-choice input { text-overflow: ellipsis; min-width: 0; }
#model-choice .wrap-inner, #align-choice .wrap-inner { min-width: 0; }
#model-choice .secondary-wrap, #align-choice .secondary-wrap { min-width: 0; padding-right: 2.2em; }
#model-figures { font-size: var(--text-sm); }
/* The comparison slider (gr.ImageSlider, Gradio 6.31) draws the history in the flow of a flex box and the
   current absolutely over it, both width 100% with an inline max-height of 500 px: in the 400 px box the
   history then starts at the top and the current is centred 50 px higher (issue 23). Both fill the same box
   and are contained in it, which is also what the slider assumes when it places the handle and the clip. */
#compare img { width: 100% !important; height: 100% !important; max-height: none !important;
               object-fit: contain; margin: 0 !important; }
@media (max-width: 640px) {
  #anodfdnet-run { width: 100%; }
}
""" + heat_view.LEGEND_CSS


def build_tab() -> None:
    """Lay out the inference tab inside the current Blocks / Tab context and wire its events."""
    choices, default = _model_menu()
    gr.Markdown(INTRO)
    with gr.Row(equal_height=True):
        history = gr.Image(
            label="1. History: earlier, known good", type="filepath", format="png", image_mode=None,
            sources=["upload", "clipboard", "webcam"], height=340, elem_id="history-input",
        )
        current = gr.Image(
            label="2. Current: the photo to inspect", type="filepath", format="png", image_mode=None,
            sources=["upload", "clipboard", "webcam"], height=340, elem_id="current-input",
        )
    pairs = gallery.example_pairs()
    examples = gr.Examples(
        examples=[[h, c] for _, h, c in pairs],
        inputs=[history, current],
        label="Or click an example (synthetic pairs: " + ", ".join(gallery.pretty(n) for n, _, _ in pairs) + ")",
        examples_per_page=len(pairs),
        visible_columns=[1],
        elem_id="examples",
    )
    with gr.Row(equal_height=True):
        model = gr.Dropdown(
            choices=choices, value=default, label="3. Model (Transformer depth, file size)",
            info="Depth 2 is the paper's choice; 0 has no Transformer. Its validation figures are below.",
            scale=3, min_width=200, elem_id="model-choice",
        )
        align = gr.Dropdown(
            choices=ALIGN_CHOICES, value="auto", label="4. Alignment of the history to the current",
            info="auto warps the history only when the estimate can be trusted.", scale=2, min_width=200,
            elem_id="align-choice",
        )
        run = gr.Button("Run ▶", variant="primary", scale=1, min_width=120, elem_id="anodfdnet-run")
    model_figures = gr.Markdown(_model_figures(default) if default else "", elem_id="model-figures")
    threshold = gr.Slider(
        0.0, 1.0, value=_model_threshold(default) if default else DEFAULT_THRESHOLD, step=0.01, label="Threshold",
        info="A pixel is anomalous where its probability is at least this; it starts at the model's calibrated "
             "threshold. Moving it redraws instantly; the model does not run again.",
        elem_id="threshold",
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            heat_over = gr.Image(
                label="Heat map over the current image", format="jpeg", interactive=False,
                height=340, buttons=["download", "fullscreen"], elem_id="heatmap-output",
            )
            opacity = gr.Slider(0.0, 1.0, value=heat_view.DEFAULT_OPACITY, step=0.05, label="Heat map opacity",
                                info="0 shows the photo, 1 the heat map alone.", elem_id="heat-opacity")
            gr.HTML(heat_view.legend_html(), elem_id="heat-legend-block", padding=False, container=False)
        with gr.Column(scale=2, min_width=280):
            live_view = live.build(slider_id="threshold")
    with gr.Column(elem_id="compare-block"):
        compare = gr.ImageSlider(
            label="History (aligned) ↔ current", type="filepath",
            format="png", interactive=False, height=400, elem_id="compare",
        )
        align_text = gr.Markdown("*The alignment's verdict appears here after **Run**.*", elem_id="alignment")
    # What /predict and /rethreshold return as images; the page shows the views above instead (not rendered).
    heat = gr.Image(label="Heat map: anomaly probability (blue 0 → red 1)", format="png", interactive=False,
                    visible=False, elem_id="heatmap-plain")
    overlay = gr.Image(
        label="Current image, anomalies tinted red and outlined", format="jpeg", interactive=False,
        visible=False, elem_id="overlay-output",
    )
    mask = gr.Image(label="Anomaly mask (white = anomalous)", format="png", interactive=False, visible=False,
                    elem_id="mask-output")
    summary = gr.Markdown("", label="summary", elem_id="summary")  # the live view above says "after Run" once
    with gr.Row():
        mask_file = gr.DownloadButton("Download mask (PNG)", value=None, elem_id="mask-download")
        heat_file = gr.DownloadButton("Download heat map (PNG)", value=None, elem_id="heatmap-download")
    with gr.Accordion("Figures as JSON (what the API returns)", open=False):
        figures = gr.JSON(label="figures", show_label=False, elem_id="figures")
    state = gr.State(None, time_to_live=STATE_TTL_S)
    align_state = gr.State("auto", time_to_live=STATE_TTL_S)  # the session's alignment (API clients: auto)
    # The /predict, /rethreshold and /set_alignment endpoints: for API clients, never shown (the page's Run is private).
    api_predict, api_rethreshold, api_align = (gr.Button(visible=False) for _ in range(3))

    predict_outputs = [heat, overlay, mask, summary, figures, mask_file, heat_file, state]
    predict_inputs = [history, current, model, threshold, align_state]

    def after(event):
        """What follows every prediction of the page: the live view, then the comparison and the heat view.

        ``always_last``: a prediction that ends while the views of the one before are still being drawn gets its own
        views after them. With Gradio's default ("once") that second trigger was dropped: one alignment pick sent
        the menu's input event twice, two re-runs overlapped, the first (overtaken) one's views were still drawing
        when the second ended, and the page kept the old verdict, comparison and heat map beside the new figures."""
        event.success(page_live, [state, threshold], live_view, api_visibility="private", preprocess=False,
                      show_progress="hidden", trigger_mode="always_last")
        event.success(page_view, [state, threshold, opacity], [compare, align_text, heat_over], api_visibility="private",
                      preprocess=False, show_progress="hidden", trigger_mode="always_last")

    # The page's runs (Run, an example, a model or an alignment chosen): only a session's newest fills the page; one asked
    # for while the same event's run is pending runs after it (Gradio's default, "once", would drop it: see demo.latest).
    runs = LatestRuns()
    page_predict, page_again = (newest_only(f, len(predict_outputs), runs) for f in (predict, page_rerun))
    rerun = dict(preprocess=False, api_visibility="private", concurrency_limit=4, concurrency_id="predict",
                 trigger_mode="always_last")
    api_predict.click(predict, predict_inputs, predict_outputs, api_name="predict", **{**rerun, "api_visibility": "public"})
    after(run.click(page_predict, predict_inputs, predict_outputs, **rerun))
    load_event = getattr(examples, "load_input_event", None)
    if load_event is not None:  # clicking an example runs it right away
        after(load_event.then(page_predict, predict_inputs, predict_outputs, **rerun))
    # The slider: the page redraws at once (live_view.js, no request); the figures follow from the server.
    threshold.input(None, [threshold], None, js=live.ON_SLIDER, trigger_mode="multiple", show_progress="hidden",
                    queue=False, api_visibility="private")
    threshold.input(
        page_figures, [state, threshold, opacity], [summary, figures, mask_file, heat_over], api_visibility="private",
        trigger_mode="always_last", show_progress="hidden", preprocess=False, concurrency_limit=8,
        concurrency_id="rethreshold",
    )
    opacity.input(page_opacity, [state, threshold, opacity], heat_over, api_visibility="private", trigger_mode="always_last",
                  show_progress="hidden", preprocess=False, concurrency_limit=8, concurrency_id="rethreshold")
    api_rethreshold.click(
        rethreshold, [state, threshold], [overlay, mask, summary, figures, mask_file], api_name="rethreshold",
        preprocess=False, concurrency_limit=8, concurrency_id="rethreshold",
    )
    api_align.click(page_set_align, align, align_state, api_name="set_alignment", preprocess=False, queue=False)
    # Another model: the slider starts at that model's calibrated threshold; the line below says its figures.
    model.change(_model_threshold, model, threshold, api_visibility="private", show_progress="hidden", queue=False)
    model.change(_model_figures, model, model_figures, api_visibility="private", show_progress="hidden", queue=False)
    # A model or an alignment chosen by the visitor: the shown pair runs again at once (nothing without a pair).
    after(model.input(_model_threshold, model, threshold, api_visibility="private", show_progress="hidden", queue=False)
          .then(page_again, predict_inputs, predict_outputs, **rerun))
    after(align.input(page_set_align, align, align_state, api_visibility="private", show_progress="hidden", queue=False,
                      preprocess=False)  # the handler validates (and escapes) what a request sends
          .success(page_again, predict_inputs, predict_outputs, **rerun))
    root = gr.context.Context.root_block
    if root is not None:  # a checkpoint added since start appears on the next page load
        root.load(lambda: gr.Dropdown(**dict(zip(("choices", "value"), _model_menu()))), None, model,
                  api_visibility="private", queue=False)
