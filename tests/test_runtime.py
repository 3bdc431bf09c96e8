"""Inference paths (anodfdnet.inference.runtime) and the ONNX export: each path gives the eager model's logits,
the export serves every input shape, a stale export is never used, and auto picks as documented."""
import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from anodfdnet.checkpoint import load_checkpoint, save_checkpoint
from anodfdnet.cli import main as cli_main
from anodfdnet.errors import UserError
from anodfdnet.models import ModelConfig, build_model
from anodfdnet.inference.onnx_export import HASH_KEY, cache_path, export_onnx, open_onnx, sidecar_path
from anodfdnet.predict import Predictor
from anodfdnet.inference.runtime import auto_path, build_runtime, native_cpu_bf16

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("ANODFDNET_CACHE", str(tmp_path / "cache"))


def _checkpoint(folder, depth=1, seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig.from_preset("lite", depth)
    model = build_model(cfg)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding them into convolutions is exercised
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    path = folder / f"anodfdnet-test-d{depth}.safetensors"
    save_checkpoint(path, model, {"eval_size": None})
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A depth-1 checkpoint (Transformer included: its position embedding is resized per input) and its export."""
    folder = tmp_path_factory.mktemp("onnx")
    ckpt = _checkpoint(folder)
    return ckpt, export_onnx(ckpt)


def _inputs(b, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(b, 3, h, w, generator=g) * 2 - 1 for _ in range(2)]


def test_export_is_beside_the_checkpoint_and_records_its_hash(exported):
    ckpt, onnx_file = exported
    assert onnx_file == sidecar_path(ckpt) and onnx_file.is_file()
    session, found = open_onnx(ckpt)
    assert found == onnx_file
    assert session.get_modelmeta().custom_metadata_map[HASH_KEY] == hashlib.sha256(ckpt.read_bytes()).hexdigest()


@pytest.mark.parametrize("shape", [(1, 64, 64), (2, 48, 80), (1, 128, 32), (3, 16, 16)])
def test_onnx_matches_eager_at_every_shape_and_batch(exported, shape):
    """One export serves any batch and any multiple of 16, square or not (the position embedding is
    resized inside the graph, not frozen at the trace's size)."""
    ckpt, _ = exported
    model, _ = load_checkpoint(ckpt, CPU)
    h, c = _inputs(*shape)
    with torch.inference_mode():
        ref = model(h, c)
        got = build_runtime(model, ckpt, CPU, "onnx")(h, c)
    assert got.shape == ref.shape == (shape[0], 1, shape[1], shape[2])
    assert float((got - ref).abs().max()) < 1e-3


@pytest.mark.parametrize("path,tol", [("eager", 0.0), ("cl", 1e-4), ("bf16", 0.25)])
def test_torch_paths_match_eager(exported, path, tol):
    ckpt, _ = exported
    ref_model, _ = load_checkpoint(ckpt, CPU)
    model, _ = load_checkpoint(ckpt, CPU)
    h, c = _inputs(2, 64, 96, seed=3)
    with torch.inference_mode():
        ref = ref_model(h, c)
        got = build_runtime(model, ckpt, CPU, path)(h, c)
    assert got.dtype == torch.float32 and got.shape == ref.shape
    assert float((got - ref).abs().max()) <= tol
    if path == "bf16":  # looser per pixel, but the same map: the probabilities agree closely on average
        assert float((torch.sigmoid(got) - torch.sigmoid(ref)).abs().mean()) < 0.01


def test_auto_is_bf16_on_a_cpu_with_native_bf16_else_channels_last(exported):
    ckpt, _ = exported
    try:  # read the flags here, not through the code under test
        flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    except OSError:
        flags = []
    native = bool({"avx512_bf16", "amx_bf16"} & set(flags))
    assert native_cpu_bf16() == native
    expected = "bf16" if native else "cl"
    assert auto_path(CPU) == expected and Predictor(ckpt, device="cpu").path == expected
    assert auto_path(torch.device("cuda")) == "bf16"


def test_onnx_is_used_only_with_the_exact_checkpoint(tmp_path, exported):
    ckpt, onnx_file = exported
    assert Predictor(ckpt, device="cpu", path="onnx").path == "onnx"
    # A retrained checkpoint under the same name with the old export beside it: the export is stale.
    other = tmp_path / ckpt.name
    (tmp_path / "x").mkdir()
    shutil.copy(_checkpoint(tmp_path / "x", seed=1), other)
    shutil.copy(onnx_file, sidecar_path(other))
    assert open_onnx(other) is None
    with pytest.raises(UserError, match="no ONNX export"):
        Predictor(other, device="cpu", path="onnx")
    # Exported again, into the cache this time (as for a read-only folder): found there.
    sidecar_path(other).unlink()
    written = export_onnx(other, cache_path(other))
    assert open_onnx(other)[1] == written and Predictor(other, device="cpu", path="onnx").path == "onnx"


def test_a_corrupt_export_is_ignored(tmp_path):
    ckpt = _checkpoint(tmp_path)
    sidecar_path(ckpt).write_bytes(b"\x08\x07 not a model")
    assert open_onnx(ckpt) is None
    with pytest.raises(UserError, match="no ONNX export"):
        Predictor(ckpt, device="cpu", path="onnx")


def test_unknown_path_and_onnx_on_cuda_are_user_errors(exported):
    ckpt, _ = exported
    model, _ = load_checkpoint(ckpt, CPU)
    with pytest.raises(UserError, match="unknown inference path"):
        build_runtime(model, ckpt, CPU, "fast")
    with pytest.raises(UserError, match="runs on the CPU"):
        build_runtime(model, ckpt, torch.device("cuda"), "onnx")


def test_export_and_evaluate_through_the_cli(tmp_path, tiny_pairs, capsys):
    ckpt = _checkpoint(tmp_path, depth=0)
    out = tmp_path / "model.onnx"
    assert cli_main(["export", "--onnx", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    assert out.is_file() and "checked against the eager model" in capsys.readouterr().out
    shutil.copy(out, sidecar_path(ckpt))
    rows = {}
    for path in ("eager", "onnx"):
        js = tmp_path / f"{path}.json"
        assert cli_main(["evaluate", "--checkpoint", str(ckpt), "--data", f"pairs:{tiny_pairs}", "--device", "cpu",
                         "--path", path, "--json", str(js)]) == 0
        rows[path] = json.loads(js.read_text())
    assert rows["eager"]["pairs"] == rows["onnx"]["pairs"] == 8
    assert abs(rows["eager"]["f1"] - rows["onnx"]["f1"]) < 1e-3 and abs(rows["eager"]["auc"] - rows["onnx"]["auc"]) < 1e-3
    assert cli_main(["export", "--onnx", "--checkpoint", str(ckpt), "--checkpoint", str(ckpt), "--out", str(out)]) == 2
    assert "exactly one --checkpoint" in capsys.readouterr().err


def test_predictions_through_onnx_equal_eager_ones(exported):
    ckpt, _ = exported
    rng = np.random.default_rng(0)
    hist = rng.integers(0, 255, (70, 110, 3), dtype=np.uint8)
    cur = hist.copy()
    cur[20:40, 30:60] = 255
    a = Predictor(ckpt, device="cpu", path="eager").run(hist, cur)
    b = Predictor(ckpt, device="cpu", path="onnx").run(hist, cur)
    assert (a.path, b.path) == ("eager", "onnx")
    np.testing.assert_allclose(a.prob, b.prob, atol=1e-4)


def test_onednn_bf16_support_follows_the_cpus_flags():
    import os
    import platform

    from anodfdnet.inference.fuse import onednn_supports

    assert onednn_supports(torch.float32)
    if platform.machine() not in ("x86_64", "AMD64") or not os.path.exists("/proc/cpuinfo"):
        pytest.skip("the flags below are x86 Linux's /proc/cpuinfo")
    flags = set(next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), []))
    # oneDNN's bf16 convolutions: AVX-512 BW, VL and DQ, or AVX-NE-CONVERT (read here, not through the code under test)
    assert onednn_supports(torch.bfloat16) == ({"avx512bw", "avx512vl", "avx512dq"} <= flags or "avx_ne_convert" in flags)


@pytest.mark.parametrize("preset,arch", [("effnet", "anodfdnet"), ("lite", "unet-cat")])
def test_fused_convolutions_compute_unfused_where_onednn_cannot_run_the_autocast_dtype(preset, arch, monkeypatch):
    """On CPUs without oneDNN bf16 (AVX2-only ones) a fused model under bf16 autocast must still run and give the
    folded model's map: each FusedConv then runs its convolution and activation as the modules it replaced."""
    from anodfdnet.inference import fuse

    if not fuse.onednn_fusion_available():
        pytest.skip("this torch build has no oneDNN fused convolutions (nothing is fused)")
    monkeypatch.setattr(fuse, "onednn_supports", lambda dtype: dtype == torch.float32)  # as on an AVX2-only CPU
    unfused, calls = fuse.FusedConv._unfused, []

    def counted(self, *a):
        calls.append(self)
        return unfused(self, *a)

    monkeypatch.setattr(fuse.FusedConv, "_unfused", counted)
    torch.manual_seed(2)
    model = build_model(ModelConfig.from_preset(preset, 1, arch=arch)).eval()
    folded = fuse.fold_batchnorm(model).to(memory_format=torch.channels_last)
    fused = fuse.fuse_activations(fuse.fold_batchnorm(model)).to(memory_format=torch.channels_last)
    assert any(isinstance(m, fuse.FusedConv) and m.attr != "none" for m in fused.modules())
    h, c = (x.contiguous(memory_format=torch.channels_last) for x in _inputs(1, 64, 96, seed=5))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        ref16, got16 = folded(h, c), fused(h, c)
    assert got16.dtype == ref16.dtype == torch.bfloat16
    assert float((got16.float() - ref16.float()).abs().max()) <= 0.1  # the same calls: at most bf16 rounding apart
    assert len({id(m) for m in calls}) == sum(isinstance(m, fuse.FusedConv) for m in fused.modules())  # every one unfused


@pytest.mark.parametrize("preset,arch", [("effnet", "anodfdnet"), ("lite", "anodfdnet"), ("lite", "unet-cat")])
def test_activations_fused_into_onednn_convolutions_keep_the_function(preset, arch):
    from anodfdnet.inference.fuse import FusedConv, fold_batchnorm, fuse_activations, onednn_fusion_available

    if not onednn_fusion_available():
        pytest.skip("this torch build has no oneDNN fused convolutions (the cl/bf16 paths then run unfused)")
    torch.manual_seed(1)
    model = build_model(ModelConfig.from_preset(preset, 1, arch=arch)).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    folded = fold_batchnorm(model).to(memory_format=torch.channels_last)
    fused = fuse_activations(fold_batchnorm(model)).to(memory_format=torch.channels_last)
    convs = [m for m in fused.modules() if isinstance(m, FusedConv)]
    acts = (torch.nn.ReLU, torch.nn.ReLU6, torch.nn.LeakyReLU)
    assert convs and any(c.attr != "none" for c in convs)
    # every activation inside a Sequential was taken into a convolution
    assert not [m for s in fused.modules() if isinstance(s, torch.nn.Sequential) for m in s.children() if isinstance(m, acts)]
    h, c = (x.contiguous(memory_format=torch.channels_last) for x in _inputs(2, 64, 96, seed=4))
    with torch.inference_mode():
        ref, got = folded(h, c), fused(h, c)
        assert float((got - ref).abs().max()) <= 1e-4
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ref16, got16 = folded(h, c), fused(h, c)
    assert got16.dtype == ref16.dtype == torch.bfloat16
    # ReLU and ReLU6 commute with rounding to bf16 (bit-identical on the machines measured); LeakyReLU's
    # 0.2 x rounds differently by an ulp; an ulp of bf16 at these logits is under 0.06
    assert float((got16.float() - ref16.float()).abs().max()) <= 0.1
