"""`python -m benchmarks paths --quick`: runs every asked-for path through timing and evaluation, and the report's
verdict follows from the numbers (the figures themselves come from the full run, benchmarks/PATHS.md)."""
import json

import torch

from anodfdnet.checkpoint import save_checkpoint
from anodfdnet.models import ModelConfig, build_model
from benchmarks.cli import main as cli_main


def test_quick_paths_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANODFDNET_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    ckpt = tmp_path / "anodfdnet-bench-d1.safetensors"
    save_checkpoint(ckpt, build_model(ModelConfig.from_preset("lite", 1)), {"eval_size": None})
    out = tmp_path / "PATHS.md"
    rc = cli_main(["paths", "--quick", "--checkpoint", str(ckpt), "--paths", "cl", "onnx", "--out", str(out),
                   "--no-progress"])
    assert rc == 0
    text = out.read_text()
    assert "quick run — not for reporting" in text
    rep = json.loads((tmp_path / "paths.json").read_text())
    rows = {r["path"]: r for r in rep["rows"]}
    assert list(rows) == ["eager", "cl", "onnx"] and not any(r["error"] for r in rows.values())
    for r in rows.values():
        assert r["model_ms"][0] > 0 and r["run_ms"][0] > 0 and set(r["metrics"]) == {"synth", "synth-hard"}
        assert all(m["pairs"] == 4 for m in r["metrics"].values())
    # Exact paths: F1 equal to eager's to well within the acceptance margin, so accepted.
    assert rows["cl"]["accepted"] and rows["onnx"]["accepted"]
    assert all(abs(d) < 0.05 for d in rows["onnx"]["delta_f1"].values())
    # The export benchmark paths made went to the cache; auto is what the runtime says for this CPU.
    from anodfdnet.inference.onnx_export import cache_path
    from anodfdnet.inference.runtime import auto_path

    assert cache_path(ckpt).is_file()
    assert rep["auto"] == auto_path(torch.device("cpu")) and f"`auto` (the default of `predict` and the app) picks **{rep['auto']}**" in text
    assert "| onnx | ONNX Runtime fp32" in text and "| eager | PyTorch fp32 (reference)" in text
