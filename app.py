"""AnoDFDNet app: the entry point locally (`python app.py`) and of the hosted Hugging Face Space.

It only composes tabs built elsewhere: "Detect" from demo/ and, when annotate/ provides them, "Label" and
(when ANODFDNET_REVIEWERS names reviewers) "Review".
Settings: GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (default 127.0.0.1:7860). No share link, no
analytics, no outside connection.
"""
from __future__ import annotations

import importlib.util
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import gradio as gr  # noqa: E402

import demo  # noqa: E402
from demo import models  # noqa: E402

QUEUE_MAX = 64  # waiting requests beyond this are turned away with "queue full"


def _annotate(name: str):
    """annotate.<name> (a tab builder) when annotate/ exists and provides it, else None."""
    if importlib.util.find_spec("annotate") is None:
        return None
    import annotate

    try:
        return getattr(annotate, name)
    except AttributeError:
        return None


def build_app() -> gr.Blocks:
    with gr.Blocks(title="AnoDFDNet", delete_cache=(1800, 3600)) as app:
        gr.Markdown(f"# {demo.TITLE}")
        with gr.Tab("Detect"):
            demo.build_tab()
        label_tab = _annotate("build_tab")
        if label_tab is not None:
            with gr.Tab("Label"):
                default = models.default_choice(models.available())  # the Detect tab's default model
                label = label_tab(predictor=models.shared_predictor, default_model=default.name if default else None)
        review_tab = _annotate("build_review_tab")
        if label_tab is not None and review_tab is not None and os.environ.get("ANODFDNET_REVIEWERS", "").strip():
            with gr.Tab("Review"):
                review_tab(store=label.store, k=label.queue.k, oauth=label.oauth)
    app.queue(max_size=QUEUE_MAX, default_concurrency_limit=2)
    return app


def launch(app: gr.Blocks, **overrides):
    settings = dict(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        share=False,
        max_file_size=demo.MAX_FILE_BYTES,
        css=demo.CSS + (_annotate("REVIEW_CSS") or "") + (_annotate("PAGE_CSS") or ""),
        head=_annotate("PAGE_HEAD") or "",
    )
    return app.launch(**{**settings, **overrides})


if __name__ == "__main__":
    launch(build_app())
