"""Training for real on tiny generated pairs: overfitting, checkpoint round trip, resuming, DDP."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from anodfdnet.checkpoint import load_checkpoint, read_info
from anodfdnet.data import parse_spec
from anodfdnet.predict import Predictor
from anodfdnet.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


def _cfg(tiny, out, **kw):
    spec = f"pairs:{tiny}"
    base = dict(data=[spec], val=[spec], out=str(out), size=64, epochs=1, batch=4, workers=0, progress=False, depth=1)
    return TrainConfig(**{**base, **kw})


def test_overfits_a_tiny_set(tiny_pairs, tmp_path):
    torch.manual_seed(0)
    best = train(_cfg(tiny_pairs, tmp_path / "run", epochs=3, steps_per_epoch=100, lr=2e-3))
    info = read_info(best)
    val_f1 = info.meta["val_metrics"][f"pairs:{tiny_pairs}"]["f1"]
    assert val_f1 > 0.9, f"validation F1 {val_f1:.3f} after 300 steps"
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3] and log[-1]["step"] == 300
    assert info.meta["steps"] > 0 and info.config.depth == 1 and info.meta["eval_size"] == 64


def test_checkpoint_round_trip_gives_identical_outputs(tiny_pairs, tmp_path):
    best = train(_cfg(tiny_pairs, tmp_path / "run", steps_per_epoch=3))
    model, info = load_checkpoint(best)
    again, _ = load_checkpoint(best)
    pair = parse_spec(f"pairs:{tiny_pairs}")[0]
    p1 = Predictor(best, device="cpu").predict(pair.history, pair.current)
    p2 = Predictor(str(best), device="cpu").predict(pair.history, pair.current)
    assert p1.dtype == np.float32 and p1.shape == pair.mask.shape and np.array_equal(p1, p2)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x, -x), again(x, -x))
    assert {k: v.shape for k, v in load_file(str(best)).items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_resumes_after_a_finished_epoch(tiny_pairs, tmp_path):
    out = tmp_path / "run"
    train(_cfg(tiny_pairs, out, epochs=1, steps_per_epoch=4))
    train(_cfg(tiny_pairs, out, epochs=2, steps_per_epoch=4))  # same run, more epochs: continues
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["step"]) for r in log] == [(1, 4), (2, 8)]


def test_a_killed_run_resumes_mid_epoch(tiny_pairs, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "anodfdnet", "train", "--data", f"pairs:{tiny_pairs}", "--val", f"pairs:{tiny_pairs}",
           "--out", str(out), "--size", "64", "--epochs", "1", "--steps-per-epoch", "60", "--save-every", "5",
           "--workers", "0", "--depth", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "resume.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "resume.pt").exists()
    saved_step = torch.load(out / "resume.pt", weights_only=False)["state"]["step"]
    assert 5 <= saved_step < 60
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming from {out / 'resume.pt'}" in done.stdout
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 60  # the killed steps were not repeated nor skipped


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_torchrun_two_processes_end_with_identical_weights(tiny_pairs, tmp_path):
    out = tmp_path / "ddp"
    script = tmp_path / "ddp_train.py"
    script.write_text(f"""
import os, torch
import anodfdnet.train as T
held = {{}}
make = T._initial_model
def capture(cfg):
    held["model"] = make(cfg)
    return held["model"]
T._initial_model = capture
T.train(T.TrainConfig(data=["pairs:{tiny_pairs}"], val=["pairs:{tiny_pairs}"], out="{out}", size=64, epochs=1,
                      steps_per_epoch=6, batch=2, workers=0, progress=False, depth=1, device="cpu"))
torch.save(held["model"].state_dict(), "{out}/rank" + os.environ["RANK"] + ".pt")
""")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = torch.load(out / "rank0.pt"), torch.load(out / "rank1.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    saved = load_file(str(out / "last.safetensors"))  # rank 0 saved exactly what both ranks hold
    assert all(torch.equal(a[k], saved[k]) for k in a)
    assert read_info(out / "last.safetensors").meta["steps"] == 6
