"""The Review tab's adaptation panel (Gradio): a reviewer adapts a model to the collected labels in the background.

Wiring only: ``adapt_job.py`` runs the job, ``identity.reviewer`` says who may start it. The events are private
(no API name) and, reachable by ``fn_index`` like every other, each checks on the server that the caller is a
reviewer before it starts or reports anything. The model to adapt is chosen by its listed name only (never a
path); budget and policy are checked by the job. The new checkpoint lands in the checkpoint folder the app
lists, so the model menus offer it on their next refresh (switching tabs or reloading the page), without a restart.
"""
from __future__ import annotations

import html

import gradio as gr

from anodfdnet.cache import cache_root
from anodfdnet.checkpoint import list_checkpoints
from anodfdnet.errors import UserError

from . import identity
from .adapt_job import MAX_BUDGET_MINUTES, AdaptJob, JobState

INTRO = """\
**Adapt a model to these labels.** Fine-tunes the chosen model on the labelled pairs of this dataset for the CPU
budget you set, in the background (the app keeps serving), and checks it on labelled pairs it did not train on.
Only a model that is better on those held-out pairs is installed; it then appears in the model menus.
"""

_JOBS: dict[str, AdaptJob] = {}  # one job per label folder in this process


def job_for(store) -> AdaptJob:
    key = str(store.root.resolve())
    if key not in _JOBS:
        _JOBS[key] = AdaptJob(store.root, cache_root() / "adapt-runs")
    return _JOBS[key]


def _listed() -> list[str]:
    return [info.name for info in list_checkpoints()]


def _render(st: JobState) -> str:
    text = html.escape(st.message, quote=False)
    if st.state == "running":
        return f"**Running** ({100 * st.fraction:.0f} % of the budget): {text}"
    return {"idle": text, "done": f"**Done.** {text}", "failed": f"**Failed.** {text}"}[st.state]


def build_adapt_panel(store, reviewer_name: gr.Textbox, oauth: bool, job: AdaptJob | None = None) -> dict:
    """Render the panel into the current Blocks context (inside the Review tab); returns its components."""
    job = job or job_for(store)
    names = _listed()
    with gr.Accordion("Adapt the model to these labels", open=False, elem_id="adapt-panel"):
        gr.Markdown(INTRO)
        with gr.Row(equal_height=True):
            base_dd = gr.Dropdown(names, value="effnet-d2" if "effnet-d2" in names else (names[0] if names else None),
                                  label="Model to adapt", elem_id="adapt-base")
            budget_nb = gr.Number(5, minimum=0.5, maximum=MAX_BUDGET_MINUTES, step=0.5, label="CPU budget (minutes)",
                                  elem_id="adapt-budget")
            policy_rd = gr.Radio(["latest", "consensus", "accepted"], value="latest", label="Which labels train",
                                 elem_id="adapt-policy")
        start_btn = gr.Button("Start adapting", variant="primary", elem_id="adapt-start")
        status_md = gr.Markdown(_render(job.status()), elem_id="adapt-status")
        timer = gr.Timer(2.0, active=False)

    def allowed(profile, name) -> identity.Who:
        try:
            return identity.reviewer(profile, name if isinstance(name, str) else None, oauth=oauth)
        except UserError as e:
            raise gr.Error(html.escape(f"Not allowed: {e}", quote=False), print_exception=False) from None

    def start_adaptation(name, base, budget, policy, profile: gr.OAuthProfile | None):
        person = allowed(profile, name)  # before anything of the request is used
        if not isinstance(base, str) or base not in _listed():
            raise gr.Error("Choose a listed model to adapt.", print_exception=False)
        try:
            job.start(base, budget, policy if isinstance(policy, str) else "", person.name)
        except UserError as e:
            raise gr.Error(html.escape(f"Not started: {e}", quote=False), print_exception=False) from None
        return _render(job.status()), gr.Timer(active=True)

    def adaptation_status(name, profile: gr.OAuthProfile | None):
        allowed(profile, name)
        st = job.status()
        return _render(st), gr.Timer(active=st.state == "running"), gr.Dropdown(choices=_listed())

    # preprocess=False: every value is checked here, so a crafted one gets this panel's own sentence, never
    # Gradio's (which would echo it back with the list of choices).
    start_btn.click(start_adaptation, [reviewer_name, base_dd, budget_nb, policy_rd], [status_md, timer], api_visibility="private",
                    preprocess=False)
    timer.tick(adaptation_status, [reviewer_name], [status_md, timer, base_dd], api_visibility="private", show_progress="hidden")
    return {"start": start_btn, "status": status_md, "timer": timer, "base": base_dd, "job": job}
