"""ONNX export of a checkpoint, and finding and opening the ONNX file that belongs to a checkpoint.

``python -m anodfdnet export --onnx`` writes one ``.onnx`` file per checkpoint with the batch, height and
width dynamic (any multiple of 16 up to ``pipeline.MAX_SIDE``), inputs ``history`` and ``current``
(B x 3 x H x W in [-1, 1]) and output ``logits`` (B x 1 x H x W). The file records the SHA-256 of the
checkpoint it was exported from (``metadata_props``), so a stale export is never served: ``open_onnx``
(which the ``onnx`` inference path of ``runtime`` uses) only opens an ONNX file whose recorded hash matches
the checkpoint's bytes. The export is checked against the eager model (ONNX Runtime vs fp32 PyTorch on an input of another
shape than the trace's) before it is put in place.

Where a checkpoint's ONNX file is looked for, in order:
1. beside it, same stem (``checkpoints/anodfdnet-lite-d2.onnx`` for the shipped ones);
2. the cache, ``$ANODFDNET_CACHE/onnx/<hash>.onnx`` (default ``~/.cache/anodfdnet/onnx``).

Exporting needs the ``onnx`` and ``onnxscript`` packages (torch's exporter uses them) and ``onnxruntime``
(to check the result); serving needs only ``onnxruntime``. None of them is needed by the default paths:
``pip install onnx onnxscript onnxruntime`` (they are in requirements-dev.txt).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import torch

from ..errors import UserError

HASH_KEY = "anodfdnet.checkpoint_sha256"
VERSION_KEY = "anodfdnet.version"
INPUTS = ("history", "current")
OUTPUT = "logits"
EXPORT_SIDE = 64  # the example input's side while tracing (the exported graph accepts any multiple of 16)
CHECK_TOLERANCE = 1e-3  # max |logit difference| between ONNX Runtime and eager fp32 accepted at export


def sha256_file(path: str | Path) -> str:
    return _sha256_cached(str(Path(path).resolve()), *_stat_key(path))


def _stat_key(path) -> tuple[int, int]:
    st = Path(path).stat()
    return st.st_size, st.st_mtime_ns


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_dir() -> Path:
    from ..cache import cache_root

    return cache_root() / "onnx"


def sidecar_path(checkpoint: str | Path) -> Path:
    return Path(checkpoint).with_suffix(".onnx")


def cache_path(checkpoint: str | Path) -> Path:
    return cache_dir() / f"{sha256_file(checkpoint)[:32]}.onnx"


def candidates(checkpoint: str | Path) -> list[Path]:
    """Where this checkpoint's ONNX file may be, in order of preference (existing files only). Whether a
    candidate really is this checkpoint's export is decided on opening it (``open_onnx``)."""
    paths = [sidecar_path(checkpoint), cache_path(checkpoint)]
    return [p for p in paths if p.is_file()]


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def onnx_session(path: str | Path):
    """An ONNX Runtime CPU session using as many threads as torch does (so paths compare fairly)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def open_onnx(checkpoint: str | Path):
    """(session, path) for the ONNX export of exactly this checkpoint file, or None when there is none."""
    if not onnx_available():
        return None
    want = sha256_file(checkpoint)
    for path in candidates(checkpoint):
        try:
            session = onnx_session(path)
        except Exception:  # truncated or foreign: not ours
            continue
        if session.get_modelmeta().custom_metadata_map.get(HASH_KEY) == want:
            return session, path
    return None


def _may_write_beside(checkpoint: Path) -> bool:
    """Beside the checkpoint unless its folder is read-only or belongs to the Hugging Face cache (an
    ``hf://`` download: files there are managed by huggingface_hub)."""
    if not os.access(checkpoint.parent, os.W_OK):
        return False
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        return True
    return not checkpoint.absolute().is_relative_to(Path(HF_HUB_CACHE).absolute())


def export_onnx(checkpoint: str | Path, out: str | Path | None = None, check: bool = True) -> Path:
    """Export a checkpoint (a resolved path) to ONNX at ``out`` (default: beside it if that folder is
    writable and not the Hugging Face cache, else the cache); returns the path written. With ``check``, the export is run once by ONNX
    Runtime and compared with the eager fp32 model before the file is put in place."""
    from .. import __version__
    from ..checkpoint import load_checkpoint

    checkpoint = Path(checkpoint)
    try:
        import onnx  # noqa: F401  (torch's exporter needs both)
        import onnxruntime  # noqa: F401  (the export is checked by running it)
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise UserError(f"exporting to ONNX needs the onnx, onnxscript and onnxruntime packages ({e.name} is missing): "
                        f"pip install onnx onnxscript onnxruntime") from None
    model, info = load_checkpoint(checkpoint, torch.device("cpu"))
    if info.routing:
        raise UserError(f"'{info.path}' routes each pair to one of two heads (an adapted checkpoint), which ONNX cannot express: "
                        "serve it with the PyTorch paths, or export the unrouted adapted.safetensors of its run folder.")
    model.eval()
    if out is None:
        out = sidecar_path(checkpoint) if _may_write_beside(checkpoint) else cache_path(checkpoint)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    example = tuple(torch.rand(2, 3, EXPORT_SIDE, EXPORT_SIDE, generator=g) * 2 - 1 for _ in INPUTS)
    dyn = {name: {0: torch.export.Dim.DYNAMIC, 2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC} for name in INPUTS}
    # The exporter logs a line per torchvision operator it cannot register (torchvision is not a
    # dependency) and warns about internals: none of it concerns this model.
    registry_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry_log.level
    registry_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, example, input_names=list(INPUTS), output_names=[OUTPUT], dynamo=True,
                                        dynamic_shapes=dyn, verbose=False)
    finally:
        registry_log.setLevel(level)
    proto = program.model_proto
    for key, value in ((HASH_KEY, sha256_file(checkpoint)), (VERSION_KEY, __version__),
                       ("anodfdnet.config", json.dumps(info.config.to_dict()))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        import onnx

        onnx.save_model(proto, tmp)
        if check:
            _check_against_eager(tmp, model)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def export_checkpoints(refs: list[str] | None, out: str | Path | None = None) -> list[Path]:
    """The ``export --onnx`` command: export each checkpoint reference (default: every checkpoint the app
    lists) and say where each went; ``out`` names the file for exactly one checkpoint."""
    from ..checkpoint import list_checkpoints, resolve

    refs = refs or [str(info.path) for info in list_checkpoints()]
    if not refs:
        raise UserError("no checkpoints to export: pass --checkpoint PATH.")
    if out and len(refs) > 1:
        raise UserError("--out names one file: give exactly one --checkpoint with it.")
    written = []
    for ref in refs:
        path = resolve(ref)
        written.append(export_onnx(path, out))
        print(f"{path.name} -> {written[-1]} (checked against the eager model)")
    return written


def _check_against_eager(onnx_file: str, model: torch.nn.Module) -> None:
    """Run the exported graph on a non-square input of another size than the trace's and compare."""
    g = torch.Generator().manual_seed(1)
    h, c = (torch.rand(1, 3, 96, 160, generator=g) * 2 - 1 for _ in INPUTS)
    with torch.inference_mode():
        ref = model(h, c).numpy()
    got = onnx_session(onnx_file).run([OUTPUT], {"history": h.numpy(), "current": c.numpy()})[0]
    diff = float(abs(got - ref).max())
    if got.shape != ref.shape or diff > CHECK_TOLERANCE:
        raise UserError(f"the ONNX export differs from the model (shape {got.shape} vs {ref.shape}, max |diff| {diff:.2e} "
                        f"> {CHECK_TOLERANCE}); not written.")
