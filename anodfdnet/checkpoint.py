"""Single-file checkpoints: the weights in one ``.safetensors`` file whose metadata holds the model
config and its provenance (data, steps, validation metrics, preferred evaluation size, version).

Loading needs nothing but the file. A checkpoint reference is a path, a shipped name (``effnet-d2`` means
``checkpoints/anodfdnet-effnet-d2.safetensors``, also looked up in ``$ANODFDNET_CHECKPOINT_DIR``), or
``hf://OWNER/REPO/FILE`` (downloaded with huggingface_hub).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from . import __version__
from .errors import UserError
from .models import ModelConfig, build_model

FORMAT = "anodfdnet-checkpoint/1"
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
ENV_DIR = "ANODFDNET_CHECKPOINT_DIR"


@dataclass
class CheckpointInfo:
    path: Path
    config: ModelConfig
    meta: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.stem.removeprefix("anodfdnet-")

    @property
    def eval_size(self) -> int | None:
        """The input size this checkpoint is best evaluated at (None = the image's own size)."""
        return self.meta.get("eval_size", self.config.img_size)

    @property
    def align(self) -> str:
        """The alignment its training and validation pairs had (``train --align``; "off" for older checkpoints):
        what it expects its inputs to look like."""
        return str(self.meta.get("align", "off"))

    @property
    def bottleneck(self) -> str:
        """"transformer" (the paper's; every older checkpoint) or "i2c" (FOD's I2Correlation)."""
        return self.config.bottleneck

    @property
    def objective(self) -> str:
        """"supervised" (trained on masks) or "normal" (on pairs without anomalies; the map is the discrepancy score)."""
        return self.config.objective

    @property
    def model_summary(self) -> str:
        """The bottleneck, depth and objective in words, e.g. "Transformer depth 2", "I2Correlation depth 2, unsupervised"."""
        kind = "I2Correlation" if self.bottleneck == "i2c" else "Transformer"
        return (f"{kind} depth {self.config.depth}" + (", unsupervised" if self.objective == "normal" else "")
                + (", routed by domain" if self.routing else ""))

    @property
    def routing(self) -> dict | None:
        """Where the checkpoint is a domain-routed pair of heads (``models/routed.py``, written by ``adapt``):
        ``{"references": R, "dim": C, ...}``; None for a single model."""
        r = self.meta.get("routing")
        return r if isinstance(r, dict) and isinstance(r.get("references"), int) and isinstance(r.get("dim"), int) else None

    @property
    def val_f1(self) -> float | None:
        f1s = [m["f1"] for m in self.meta.get("val_metrics", {}).values() if isinstance(m, dict) and "f1" in m]
        return sum(f1s) / len(f1s) if f1s else None

    @property
    def threshold(self) -> float:
        """The calibrated default threshold: the one that maximised the mean validation F1 over the
        checkpoint's validation sources when it was trained (0.5, the paper's, for older checkpoints)."""
        t = self.meta.get("threshold")
        return float(t) if isinstance(t, (int, float)) and 0.0 <= t <= 1.0 else 0.5

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / 1e6


def checkpoint_dirs() -> list[Path]:
    dirs = []
    if os.environ.get(ENV_DIR):
        dirs.append(Path(os.environ[ENV_DIR]).expanduser())
    dirs.append(SHIPPED_DIR)
    return dirs


def save_checkpoint(path: str | Path, model: torch.nn.Module, meta: dict | None = None) -> Path:
    """Write model weights + config + ``meta`` atomically (temporary name, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = model.module if hasattr(model, "module") else model  # unwrap DDP
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    meta = {"version": __version__, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(meta or {})}
    metadata = {"format": FORMAT, "config": json.dumps(module.config.to_dict()), "meta": json.dumps(meta)}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # an ordinary file: readable by the app's user as well
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_info(path: str | Path) -> CheckpointInfo:
    """Config and provenance of a checkpoint, without loading its tensors."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for a bad header
        raise UserError(f"'{path}' is not a readable AnoDFDNet checkpoint ({e}).") from None
    if md.get("format") != FORMAT:
        raise UserError(f"'{path}' is a safetensors file but not an AnoDFDNet checkpoint (no '{FORMAT}' metadata).")
    return CheckpointInfo(path, ModelConfig.from_dict(json.loads(md["config"])), json.loads(md.get("meta", "{}")))


def resolve(ref: str | Path) -> Path:
    """Turn a checkpoint reference (path, shipped name or hf://OWNER/REPO/FILE) into a local path."""
    ref = str(ref)
    if ref.startswith("hf://"):
        parts = ref[len("hf://"):].split("/", 2)
        if len(parts) != 3 or not all(parts):
            raise UserError(f"'{ref}' is not of the form hf://OWNER/REPO/FILE.")
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(repo_id=f"{parts[0]}/{parts[1]}", filename=parts[2]))
        except Exception as e:  # offline, missing repo or file: all are the user's to fix
            raise UserError(f"could not download '{ref}' from the Hugging Face Hub ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no details'}).") from None
    p = Path(ref).expanduser()
    if p.is_file():
        return p
    if p.suffix != ".safetensors" and "/" not in ref:
        for d in checkpoint_dirs():
            for candidate in (d / f"anodfdnet-{ref}.safetensors", d / f"{ref}.safetensors"):
                if candidate.is_file():
                    return candidate
    known = ", ".join(i.name for i in list_checkpoints()) or "none found"
    raise UserError(f"checkpoint '{ref}' not found: give a path, hf://OWNER/REPO/FILE, or a shipped name ({known}).")


def load_checkpoint(ref: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, CheckpointInfo]:
    """Build the model a checkpoint describes and load its weights; returns (model in eval mode, info)."""
    info = read_info(resolve(ref))
    model = build_model(info.config)
    if info.routing:  # two heads on one encoder, routed by domain
        from .models.routed import RoutedModel

        with safe_open(str(info.path), framework="pt") as f:  # the shape the file holds, not what its metadata claims
            shape = f.get_slice("references").get_shape() if "references" in f.keys() else None
        if not shape or len(shape) != 2:
            raise UserError(f"'{info.path}' says it is routed but holds no references.")
        model = RoutedModel(model, build_model(info.config), torch.zeros(*shape), torch.zeros(shape[0], dtype=torch.bool))
    try:
        model.load_state_dict(load_file(str(info.path)))
    except RuntimeError as e:
        raise UserError(f"'{info.path}' does not hold the tensors its config describes ({str(e).splitlines()[0]}).") from None
    return model.to(device).eval(), info


def list_checkpoints(dirs: list[Path] | None = None) -> list[CheckpointInfo]:
    """Every readable checkpoint in the given folders (default: $ANODFDNET_CHECKPOINT_DIR, then shipped)."""
    found, seen = [], set()
    for d in dirs if dirs is not None else checkpoint_dirs():
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.safetensors")):
            try:
                info = read_info(p)
            except UserError:
                continue
            if p.resolve() not in seen:
                seen.add(p.resolve())
                found.append(info)
    return found
