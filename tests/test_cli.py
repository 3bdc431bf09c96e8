"""The command line on real files: a working predict/evaluate, and one sentence + exit 2 on bad input."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anodfdnet.checkpoint import save_checkpoint
from anodfdnet.models import ModelConfig, build_model

ROOT = Path(__file__).resolve().parents[1]


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "anodfdnet", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny-d0.safetensors"
    save_checkpoint(path, build_model(ModelConfig.from_preset("lite", 0)), {"eval_size": 64})
    return path


def assert_user_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stderr)
    err = r.stderr.strip()
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err  # one sentence
    for w in words:
        assert w in err, err


def test_predict_one_pair_and_a_folder(tiny_pairs, ckpt, tmp_path):
    pair = tiny_pairs / "pair00"
    r = run("predict", "--checkpoint", ckpt, "--history", pair / "hist.png", "--current", pair / "cur.png",
            "--out", tmp_path / "m.png", "--heatmap", tmp_path / "h.png", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    mask = np.array(Image.open(tmp_path / "m.png"))
    assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 255}
    assert np.array(Image.open(tmp_path / "h.png").convert("RGB")).shape == (64, 64, 3)
    r = run("predict", "--checkpoint", ckpt, "--data", f"pairs:{tiny_pairs}", "--out-dir", tmp_path / "many", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "many").glob("*_mask.png"))) == 8
    from anodfdnet.inference.runtime import auto_path
    import torch

    assert f"predict ({auto_path(torch.device('cpu'))})" in r.stderr and "8/8" in r.stderr  # the bar names the path
    # Batched, with other thread counts: the same files, byte for byte (fp32 eager both times).
    # With model lanes (calls in flight, torch's threads shared among them) too.
    for name, extra in (("one", ["--workers", "2", "--lanes", "1"]), ("batched", ["--batch", "3", "--workers", "0"]),
                        ("lanes", ["--lanes", "3"])):
        r = run("predict", "--checkpoint", ckpt, "--data", f"pairs:{tiny_pairs}", "--out-dir", tmp_path / name, "--device", "cpu",
                "--path", "eager", *extra)
        assert r.returncode == 0, r.stderr
        said = {"one": " 1 model lane x ", "lanes": " 3 model lanes x 1 torch thread)", "batched": " model lane"}[name]
        assert said in r.stdout, r.stdout
    for f in sorted((tmp_path / "one").glob("*_mask.png")):
        for other in ("batched", "lanes"):
            assert np.array_equal(np.array(Image.open(f)), np.array(Image.open(tmp_path / other / f.name))), (other, f.name)
    assert_user_error(run("predict", "--checkpoint", ckpt, "--data", f"pairs:{tiny_pairs}", "--out-dir", tmp_path / "x",
                          "--device", "cpu", "--lanes", "0"), "--lanes must be 1 or more", "got 0.")
    assert_user_error(run("predict", "--checkpoint", ckpt, "--data", f"pairs:{tiny_pairs}", "--out-dir", tmp_path / "x",
                          "--device", "cpu", "--lanes", "100000"), "at most 64", "got 100000")  # no 100,000 threads
    assert_user_error(run("predict", "--checkpoint", ckpt, "--data", f"pairs:{tiny_pairs}", "--out-dir", tmp_path / "x",
                          "--device", "cpu", "--batch", "0"), "batch")
    assert_user_error(run("predict", "--checkpoint", ckpt, "--data", f"pairs:{tiny_pairs}", "--out-dir", tmp_path / "x",
                          "--device", "cpu", "--path", "onnx"), "no ONNX export")


def test_evaluate_writes_the_metrics_at_0_5_and_at_the_calibrated_threshold_and_a_roc(tiny_pairs, ckpt, tmp_path):
    from anodfdnet.checkpoint import read_info

    r = run("evaluate", "--checkpoint", ckpt, "--data", f"pairs:{tiny_pairs}", "--json", tmp_path / "m.json",
            "--roc", tmp_path / "roc.png", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "m.json").read_text())
    assert list(m) == ["pairs", "precision", "recall", "oa", "f1", "iou", "auc", "eer", "threshold", "calibrated", "alignment"] and m["pairs"] == 8
    assert m["threshold"] == 0.5 and m["calibrated"]["threshold"] == pytest.approx(read_info(ckpt).threshold)
    assert list(m["calibrated"]) == ["threshold", "precision", "recall", "oa", "f1", "iou"]
    assert all(w in r.stdout for w in ("F1", "IoU", "AUC", "EER", "(calibrated)")) and Image.open(tmp_path / "roc.png").size[0] > 100
    r = run("evaluate", "--checkpoint", ckpt, "--data", f"pairs:{tiny_pairs}", "--json", tmp_path / "one.json", "--threshold", "0.3",
            "--device", "cpu")  # one threshold asked for: one row, no calibrated part
    one = json.loads((tmp_path / "one.json").read_text())
    assert one["threshold"] == 0.3 and "calibrated" not in one and "(calibrated)" not in r.stdout


def test_bad_inputs_exit_2_with_one_sentence(tiny_pairs, ckpt, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("this is not an image")
    pair = tiny_pairs / "pair00"
    assert_user_error(run("evaluate", "--checkpoint", ckpt, "--data", "nonsense"), "nonsense", "scheme")
    assert_user_error(run("evaluate", "--checkpoint", ckpt, "--data", "zip:/x"), "unknown scheme")
    assert_user_error(run("evaluate", "--checkpoint", ckpt, "--data", f"ab:{tmp_path / 'missing'}"), "missing")
    assert_user_error(run("predict", "--checkpoint", tmp_path / "nope.safetensors", "--history", pair / "hist.png",
                          "--current", pair / "cur.png", "--out", tmp_path / "o.png"), "nope.safetensors")
    assert_user_error(run("predict", "--checkpoint", ckpt, "--history", bad, "--current", pair / "cur.png",
                          "--out", tmp_path / "o.png", "--device", "cpu"), "bad.png")
    assert_user_error(run("predict", "--checkpoint", ckpt, "--history", tmp_path / "gone.png", "--current", pair / "cur.png",
                          "--out", tmp_path / "o.png", "--device", "cpu"), "gone.png")
    assert_user_error(run("predict", "--checkpoint", bad, "--history", pair / "hist.png", "--current", pair / "cur.png",
                          "--out", tmp_path / "o.png"), "bad.png")
    assert_user_error(run("predict", "--checkpoint", ckpt, "--history", pair / "hist.png", "--out", tmp_path / "o.png"), "--current")
    assert_user_error(run("evaluate", "--checkpoint", ckpt, "--data", f"pairs:{tiny_pairs}", "--size", "50"), "multiple of 16")
    assert_user_error(run("train", "--data", "synth:oops", "--out", tmp_path / "run"), "synth:oops")


def test_hf_checkpoint_offline_is_a_clear_error(tmp_path):
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    r = run("evaluate", "--checkpoint", "hf://someone/some-repo/model.safetensors", "--data", "synth:2", env=env)
    assert_user_error(r, "hf://someone/some-repo/model.safetensors")


def test_models_table_lists_every_preset_and_depth():
    r = run("models")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert {(row[0], int(row[1])) for row in rows} == {(p, d) for p in ("effnet", "effnet1", "lite", "paper") for d in (0, 1, 2, 4, 8)}


def test_cli_nits_version_help_splits_and_missing_folders(tiny_pairs, ckpt, tmp_path):
    from anodfdnet import __version__

    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"anodfdnet {__version__}", (r.stdout, r.stderr)
    r = run("predict", "--help")
    checkpoint_help = r.stdout.split("--checkpoint CHECKPOINT", 2)[-1].split("--history")[0]
    assert "shipped name" in checkpoint_help and "hf://" in checkpoint_help, r.stdout
    r = run("export", "--help")
    assert r.returncode == 0 and "fast CPU path" not in r.stdout and "ONNX" in r.stdout
    r = run("--help")
    assert "fast CPU path" not in r.stdout
    # A split that does not exist: the error names the valid ones.
    assert_user_error(run("evaluate", "--checkpoint", ckpt, "--data", f"pairs:{tiny_pairs}@test"), "'@test'", "@train", "@val")
    # predict --out and --heatmap into folders that do not exist yet: made.
    pair = tiny_pairs / "pair00"
    out, heat = tmp_path / "new" / "deeper" / "m.png", tmp_path / "other" / "h.png"
    r = run("predict", "--checkpoint", ckpt, "--history", pair / "hist.png", "--current", pair / "cur.png",
            "--out", out, "--heatmap", heat, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (64, 64) and Image.open(heat).size == (64, 64)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_user_error(run("predict", "--checkpoint", ckpt, "--history", pair / "hist.png", "--current", pair / "cur.png",
                          "--out", blocker / "m.png", "--device", "cpu"), "cannot create the folder")
