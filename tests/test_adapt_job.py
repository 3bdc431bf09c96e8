"""The app's background adaptation (annotate/adapt_job.py): a real child process on a real label folder."""
import time

import numpy as np
import pytest
import torch

from anodfdnet.checkpoint import read_info, save_checkpoint
from anodfdnet.errors import UserError
from anodfdnet.models import ModelConfig, build_model
from annotate.adapt_job import AdaptJob
from annotate.store import LabelStore


def _labels(folder, n=3):
    store = LabelStore(folder)
    rng = np.random.default_rng(0)
    for i in range(n):
        hist = rng.integers(40, 120, (48, 48, 3), dtype=np.uint8)
        cur = hist.copy()
        mask = np.zeros((48, 48), bool)
        mask[8 + 4 * i:20 + 4 * i, 10:22] = True
        cur[mask] = (240, 240, 40)
        store.save(hist, cur, mask, "ann", "foreign body")
    return folder


def test_a_job_runs_in_the_background_reports_progress_and_installs_or_says_why_not(tmp_path):
    ckpts = tmp_path / "ckpts"
    torch.manual_seed(0)
    save_checkpoint(ckpts / "anodfdnet-start.safetensors", build_model(ModelConfig.from_preset("lite", 0)), {"eval_size": 48})
    job = AdaptJob(_labels(tmp_path / "labels"), tmp_path / "runs", ckpts, extra_args=("--steps", "2", "--size", "32", "--force"))
    assert job.status().state == "idle"
    name = job.start("start", 1, "latest", "rita")
    assert name.startswith("start-adapted-")
    with pytest.raises(UserError, match="already running"):
        job.start("start", 1, "latest", "rita")
    deadline, seen_running = time.monotonic() + 300, False
    while (st := job.status()).state == "running" and time.monotonic() < deadline:
        seen_running = True
        assert 0.0 <= st.fraction <= 1.0 and "rita" in st.message
        time.sleep(0.5)
    assert seen_running and st.state == "done", st.message
    assert st.report["pairs"] == 3 and set(st.report["heldout"]) == {"before", "threshold", "adapted"}
    installed = ckpts / f"anodfdnet-{name}.safetensors"  # --force: installed whatever the held-out figures say
    assert installed.is_file() and read_info(installed).meta["adaptation"]["pairs"] == 3
    assert "Installed" in st.message and name in st.message


def test_a_job_refuses_bad_requests_and_says_why_a_failed_run_failed(tmp_path):
    job = AdaptJob(tmp_path / "empty", tmp_path / "runs", tmp_path / "ckpts")
    with pytest.raises(UserError, match="no saved labels"):
        job.start("effnet-d2", 2, "latest", "rita")
    job = AdaptJob(_labels(tmp_path / "labels", 2), tmp_path / "runs", tmp_path / "ckpts")
    for base, budget, policy in (("effnet-d2", 0.1, "latest"), ("effnet-d2", 1e9, "latest"), ("effnet-d2", "x", "latest"),
                                 ("effnet-d2", 2, "everything"), ("../../etc/passwd", 2, "latest"), ("", 2, "latest")):
        with pytest.raises(UserError):
            job.start(base, budget, policy, "rita")
    job.start("no-such-model", 1, "latest", "rita")
    deadline = time.monotonic() + 120
    while (st := job.status()).state == "running" and time.monotonic() < deadline:
        time.sleep(0.3)
    assert st.state == "failed" and "no-such-model" in st.message and "Traceback" not in st.message
