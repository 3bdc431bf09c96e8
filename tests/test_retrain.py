"""The labelling loop end to end: four pairs saved through the app's /save_label, `adapt` for a few
steps, and the new checkpoint offered by the running app (its model menu and /predict)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

from anodfdnet.checkpoint import read_info, save_checkpoint
from anodfdnet.data import parse_spec
from anodfdnet.models import ModelConfig, build_model

from conftest import served_app

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("retrain-app")
    ckpts = tmp / "checkpoints"
    torch.manual_seed(0)
    save_checkpoint(ckpts / "anodfdnet-start-d0.safetensors", build_model(ModelConfig.from_preset("lite", 0)), {"eval_size": 64})
    with served_app(tmp, ckpts) as url:
        yield url, tmp, ckpts


def _png(path: Path, a: np.ndarray) -> str:
    Image.fromarray(a).save(path)
    return str(path)


def test_labels_saved_in_the_app_become_a_checkpoint_the_app_offers(served):
    url, tmp, ckpts = served
    client = Client(url, verbose=False)
    rng = np.random.default_rng(3)
    for i in range(4):
        hist = rng.integers(60, 120, (64, 64, 3), dtype=np.uint8)
        cur = hist.copy()
        y, x = rng.integers(4, 40, size=2)
        cur[y:y + 16, x:x + 16] = (240, 240, 40)
        layer = np.zeros((64, 64, 4), np.uint8)
        layer[y:y + 16, x:x + 16] = (255, 0, 128, 255)
        editor = {"background": handle_file(_png(tmp / f"c{i}.png", cur)),
                  "layers": [handle_file(_png(tmp / f"l{i}.png", layer))], "composite": None}
        status = client.predict(handle_file(_png(tmp / f"h{i}.png", hist)), editor, "tester", "foreign body", "",
                                api_name="/save_label")
        assert status.startswith("**Saved** row"), status
    assert len(parse_spec(f"hf:{tmp / 'labels'}")) == 4

    env = {**os.environ, "ANODFDNET_CHECKPOINT_DIR": str(ckpts), "HF_HUB_OFFLINE": "1"}
    # --force: an untrained start model gives no meaningful held-out comparison; the loop itself is what is tested.
    r = subprocess.run([sys.executable, "-m", "anodfdnet", "adapt", "--labels", str(tmp / "labels"), "--from", "start-d0",
                        "--out", str(tmp / "run"), "--steps", "3", "--size", "32", "--device", "cpu", "--name", "retrained-d0",
                        "--force"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    new = ckpts / "anodfdnet-retrained-d0.safetensors"
    assert new.is_file() and "model menu lists it" in r.stdout
    info = read_info(new)
    assert info.meta["labels"] == str(tmp / "labels") and info.meta["retrained_from"] == "start-d0"
    assert info.meta["adaptation"]["pairs"] == 4 and info.meta["domain"] == "labels"
    report = json.loads((tmp / "run" / "report.json").read_text())
    assert report["pairs"] == 4 and report["folds"] == 3 and set(report["heldout"]) == {"before", "threshold", "adapted"}
    assert report["installed"] == str(new)
    alias = subprocess.run([sys.executable, "-m", "anodfdnet", "retrain", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert alias.returncode == 0 and "--budget-minutes" in alias.stdout  # the former name runs the same command

    from demo.tab import _model_menu  # what the model dropdown shows on the next page load

    assert "retrained-d0" in [value for _, value in _model_menu()[0]]
    hist, cur = tmp / "h0.png", tmp / "c0.png"
    out = client.predict(handle_file(str(hist)), handle_file(str(cur)), "retrained-d0", 0.5, api_name="/predict")
    assert out[4]["checkpoint"] == "retrained-d0"
    from anodfdnet.inference.runtime import auto_path

    assert out[4]["inference_path"] == auto_path(torch.device("cpu"))
