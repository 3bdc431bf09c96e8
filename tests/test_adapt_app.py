"""The Review tab's adaptation panel over raw HTTP: only a reviewer starts a job, by a listed model name only;
the job runs in the background and its checkpoint appears in the app's model menu without a restart."""
from __future__ import annotations

import time
import uuid

import numpy as np
import pytest
import torch

from anodfdnet.checkpoint import save_checkpoint
from anodfdnet.models import ModelConfig, build_model
from annotate import adapt_panel
from annotate.adapt_job import AdaptJob
from annotate.store import LabelStore

from conftest import served_app
from test_crowd_app import call, config_fn

pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")


def _prepare(tmp):
    ckpts = tmp / "checkpoints"
    torch.manual_seed(0)
    save_checkpoint(ckpts / "anodfdnet-start.safetensors", build_model(ModelConfig.from_preset("lite", 0)), {"eval_size": 48})
    store = LabelStore(tmp / "labels")
    rng = np.random.default_rng(0)
    for i in range(3):
        hist = rng.integers(40, 120, (48, 48, 3), dtype=np.uint8)
        cur = hist.copy()
        mask = np.zeros((48, 48), bool)
        mask[6 + 5 * i:18 + 5 * i, 10:22] = True
        cur[mask] = (240, 240, 40)
        store.save(hist, cur, mask, "ann", "foreign body")
    # A small job for the test (two steps a run on 32-pixel crops), registered for this label folder.
    adapt_panel._JOBS[str((tmp / "labels").resolve())] = AdaptJob(tmp / "labels", tmp / "runs", ckpts,
                                                                    extra_args=("--steps", "2", "--size", "32", "--force"))
    return ckpts


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adapt-app")
    ckpts = _prepare(tmp)
    mp = pytest.MonkeyPatch()
    for name in ("SYSTEM", "SPACE_ID", "OAUTH_CLIENT_ID", "ANODFDNET_REQUIRE_LOGIN"):
        mp.delenv(name, raising=False)
    with served_app(tmp, ckpts, {"ANODFDNET_REVIEWERS": "rita"}) as url:
        yield url, tmp, ckpts
    mp.undo()


def test_only_a_reviewer_starts_an_adaptation_and_its_model_is_then_offered(app):
    url, tmp, ckpts = app
    start, status = config_fn(url, "start_adaptation"), config_fn(url, "adaptation_status")
    job = adapt_panel._JOBS[str((tmp / "labels").resolve())]
    for name in ("mallory", "", None, "<b>rita</b>", "Rita", "rita\u200b"):
        ok, err = call(url, start, [name, "start", 1, "latest"], uuid.uuid4().hex)
        assert not ok and "Not allowed" in str(err), (name, err)
        ok, err = call(url, status, [name], uuid.uuid4().hex)
        assert not ok and "Not allowed" in str(err), (name, err)
    assert job.status().state == "idle"
    for base in ("../../../etc/passwd", str(ckpts / "anodfdnet-start.safetensors"), "hf://x/y/z", 5, None):
        ok, err = call(url, start, ["rita", base, 1, "latest"], uuid.uuid4().hex)
        assert not ok and "listed model" in str(err), (base, err)
    for budget, policy in ((1e6, "latest"), (-1, "latest"), ("ten", "latest"), (1, "<script>")):
        ok, err = call(url, start, ["rita", "start", budget, policy], uuid.uuid4().hex)
        assert not ok and "Not started" in str(err) and "<script>" not in str(err), (budget, policy, err)
    assert job.status().state == "idle"

    session = uuid.uuid4().hex
    ok, out = call(url, start, ["rita", "start", 1, "latest"], session)
    assert ok and "Running" in out[0], out
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ok, out = call(url, status, ["rita"], session)
        assert ok, out
        if not out[0].startswith("**Running**"):
            break
        time.sleep(1)
    assert out[0].startswith("**Done.**"), out[0]
    installed = sorted(p.stem.removeprefix("anodfdnet-") for p in ckpts.glob("anodfdnet-start-adapted-*.safetensors"))
    assert len(installed) == 1 and installed[0] in out[0]
    menu = [c[1] if isinstance(c, (list, tuple)) else c for c in out[2]["choices"]]
    assert installed[0] in menu  # the panel's own menu refreshed
    from demo.tab import _model_menu  # what the Detect tab's menu shows on its next refresh

    assert installed[0] in [value for _, value in _model_menu()[0]]


def test_with_login_required_a_typed_reviewer_name_cannot_start_a_job(tmp_path):
    ckpts = _prepare(tmp_path)
    with served_app(tmp_path, ckpts, {"ANODFDNET_REVIEWERS": "rita", "ANODFDNET_REQUIRE_LOGIN": "1"}) as url:
        ok, err = call(url, config_fn(url, "start_adaptation"), ["rita", "start", 1, "latest"], uuid.uuid4().hex)
        assert not ok and "signed-in" in str(err), err
    assert adapt_panel._JOBS[str((tmp_path / "labels").resolve())].status().state == "idle"
