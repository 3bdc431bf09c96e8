"""Training: the paper's recipe by default (BCE on logits, Adam 2e-4 with betas (0.5, 0.999), batch 4,
joint flip/rot180 augmentation, images in [-1, 1], keep the epoch with the best validation F1).

Runs single-process or unchanged under ``torchrun --nproc_per_node N`` (DDP; gloo on CPU, NCCL on GPU).
The run folder holds ``best.safetensors``, ``last.safetensors``, ``resume.pt`` (optimizer and progress)
and ``log.jsonl``; running the same command again resumes from ``resume.pt``.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from tqdm import tqdm

from .checkpoint import load_checkpoint, read_info, resolve, save_checkpoint
from .data import ConcatSource, PairDataset, parse_spec, split
from .device import pick_device
from .errors import UserError
from .evaluate import evaluate
from .models import ModelConfig, build_model, count_parameters


@dataclass
class TrainConfig:
    data: list[str]
    out: str
    val: list[str] | None = None  # None: hold out val_fraction of each --data source
    val_fraction: float = 0.2
    arch: str = "anodfdnet"
    preset: str = "lite"
    depth: int = 2
    size: int = 256  # training input size
    mode: str = "resize"  # "resize" whole pairs to size, or "crop" size x size at native resolution
    eval_size: int | None = None  # validation input long side; None = native (crop) or `size` (resize)
    epochs: int = 100
    steps_per_epoch: int | None = None  # cap on optimizer steps per epoch (None: one pass over the data)
    batch: int = 4
    lr: float = 2e-4
    loss: str = "bce"  # "bce" (the paper's) or "bce+dice" (converges faster when anomalies are rare)
    init: str | None = None  # a checkpoint to start from (weights of matching shape are loaded)
    device: str = "auto"
    seed: int = 0
    workers: int = 2
    val_limit: int | None = None  # validate on the first N pairs of each val source
    save_every: int = 200  # steps between mid-epoch saves of last.safetensors / resume.pt
    progress: bool = True
    extra_meta: dict = field(default_factory=dict)

    def resolved_eval_size(self) -> int | None:
        if self.eval_size is not None:
            return self.eval_size
        return None if self.mode == "crop" else self.size


def model_choice(arch: str | None, preset: str | None, depth: int | None, init: str | None) -> tuple[str, str, int]:
    """(arch, preset, depth) to train: as given; what is not given comes from the ``init`` checkpoint when there
    is one, else anodfdnet, lite and depth 2 (the ``train`` command's --arch, --preset, --depth and --init)."""
    if init:
        cfg0 = read_info(resolve(init)).config
        arch, preset, depth = arch or cfg0.arch, preset or cfg0.preset, cfg0.depth if depth is None else depth
    return arch or "anodfdnet", preset or "lite", 2 if depth is None else depth


class EpochBatches(torch.utils.data.Sampler):
    """Deterministic batches for one epoch: a seeded permutation, this rank's share, from batch ``start``.

    Deterministic so that an interrupted epoch resumes at the batch where it stopped."""

    def __init__(self, n: int, batch: int, seed: int, epoch: int, rank: int, world: int, cap: int | None, start: int = 0):
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=g).tolist()
        if cap is not None:  # an epoch may be shorter or longer than one pass: cycle the permutation
            need = cap * batch * world
            order = (order * math.ceil(need / max(n, 1)))[:need]
        mine = order[rank::world]
        self.batches = [mine[i:i + batch] for i in range(0, len(mine) - batch + 1, batch)][start:]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


LOSSES = ("bce", "bce+dice")


def loss_fn(logits: torch.Tensor, mask: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """BCE on logits (the paper's loss), optionally plus a soft Dice loss over the batch.

    Anomalies often cover well under 1 % of the pixels; plain BCE then predicts "normal" everywhere for
    many epochs. The Dice term weighs the rare positive pixels as much as the rest and shortens that."""
    loss = F.binary_cross_entropy_with_logits(logits, mask)
    if kind == "bce+dice":
        p = torch.sigmoid(logits)
        loss = loss + 1 - (2 * (p * mask).sum() + 1) / (p.sum() + mask.sum() + 1)
    elif kind != "bce":
        raise UserError(f"unknown loss '{kind}': use one of {', '.join(LOSSES)}.")
    return loss


def _dist_setup(device_arg: str) -> tuple[int, int, torch.device]:
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return 0, 1, pick_device(device_arg)
    local = int(os.environ.get("LOCAL_RANK", 0))
    device = pick_device(device_arg)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def build_sources(cfg: TrainConfig):
    """Training source and the validation sources ({spec: source}), split deterministically by seed."""
    train_parts, val_sources = [], {}
    for spec in cfg.data:
        src = parse_spec(spec)
        if cfg.val is None:
            tr, va = split(src, cfg.val_fraction, cfg.seed)
            train_parts.append(tr)
            val_sources[spec] = va
        else:
            train_parts.append(src)
    for spec in cfg.val or []:
        val_sources[spec] = parse_spec(spec)
    train_source = train_parts[0] if len(train_parts) == 1 else ConcatSource(train_parts)
    if len(train_source) == 0:
        raise UserError("the training data is empty after the validation split.")
    return train_source, val_sources


def _initial_model(cfg: TrainConfig) -> torch.nn.Module:
    model = build_model(ModelConfig.from_preset(cfg.preset, cfg.depth, arch=cfg.arch))
    if cfg.init:
        init_model, _ = load_checkpoint(cfg.init)
        own = model.state_dict()
        matched = {k: v for k, v in init_model.state_dict().items() if k in own and own[k].shape == v.shape}
        if not matched:
            raise UserError(f"--init '{cfg.init}' shares no weights with a {cfg.arch} {cfg.preset} depth-{cfg.depth} model.")
        model.load_state_dict(matched, strict=False)
    return model


def train(cfg: TrainConfig) -> Path:
    """Train; returns the path of the best-validation-F1 checkpoint."""
    rank, world, device = _dist_setup(cfg.device)
    out = Path(cfg.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    train_source, val_sources = build_sources(cfg)
    dataset = PairDataset(train_source, size=cfg.size, mode=cfg.mode, augment=True, seed=cfg.seed)
    model = _initial_model(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    state = {"epoch": 0, "batch_in_epoch": 0, "step": 0, "best_f1": -1.0, "best_val": None}
    resume = out / "resume.pt"
    if resume.exists():
        ckpt = torch.load(resume, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        state = ckpt["state"]
        if rank == 0:
            print(f"resuming from {resume}: epoch {state['epoch'] + 1}, step {state['step']}", flush=True)
    net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else model
    eval_size = cfg.resolved_eval_size()
    meta_base = {
        "arch": cfg.arch, "data": cfg.data, "val": list(val_sources), "eval_size": eval_size,
        "train": {k: v for k, v in asdict(cfg).items() if k not in ("out", "progress", "extra_meta")},
        "parameters": count_parameters(model), **cfg.extra_meta,
    }

    def save(kind: str, val=None):
        if rank != 0:
            return
        meta = {**meta_base, "steps": state["step"], "epochs": state["epoch"], "val_metrics": val or state["best_val"] or {}}
        save_checkpoint(out / f"{kind}.safetensors", model, meta)
        if kind == "last":
            tmp = resume.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state}, tmp)
            os.replace(tmp, resume)

    log = open(out / "log.jsonl", "a") if rank == 0 else None
    if rank == 0:
        print(f"training {cfg.arch} {cfg.preset} depth {cfg.depth} ({count_parameters(model) / 1e6:.2f}M parameters) on "
              f"{len(dataset)} pairs, validating on {', '.join(f'{s} ({len(v)})' for s, v in val_sources.items())}; device {device}, "
              f"world {world}", flush=True)
    try:
        while state["epoch"] < cfg.epochs:
            epoch = state["epoch"]
            sampler = EpochBatches(len(dataset), cfg.batch, cfg.seed, epoch, rank, world, cfg.steps_per_epoch, state["batch_in_epoch"])
            loader = DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.workers, pin_memory=device.type == "cuda",
                                persistent_workers=False)
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress or rank != 0, unit="batch",
                       initial=state["batch_in_epoch"], total=state["batch_in_epoch"] + len(sampler))
            model.train()
            running = None
            for b in bar:
                h, c, m = (b[k].to(device, non_blocking=True) for k in ("history", "current", "mask"))
                loss = loss_fn(net(h, c), m, cfg.loss)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                state["step"] += 1
                state["batch_in_epoch"] += 1
                running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
                bar.set_postfix(loss=f"{running:.4f}", best_f1=f"{max(state['best_f1'], 0):.3f}")
                if cfg.save_every and state["step"] % cfg.save_every == 0:
                    save("last")
            if world > 1:  # BatchNorm running statistics drift apart per rank after the last step: take rank 0's
                for buf in model.buffers():
                    dist.broadcast(buf, 0)
            val = {spec: evaluate(model, src, eval_size, device, limit=cfg.val_limit, progress=cfg.progress, desc=f"val {spec}")
                   for spec, src in val_sources.items()}
            mean_f1 = sum(v["f1"] for v in val.values()) / max(len(val), 1)
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
            if rank == 0:
                record = {"epoch": state["epoch"], "step": state["step"], "loss": running, "val_f1": mean_f1, "val": val,
                          "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
                log.write(json.dumps(record) + "\n")
                log.flush()
                tqdm.write(f"epoch {state['epoch']}: loss {running:.4f}  " + "  ".join(f"{s}: F1 {v['f1']:.4f}" for s, v in val.items()))
            if mean_f1 > state["best_f1"]:
                state["best_f1"], state["best_val"] = mean_f1, val
                save("best", val)
            save("last", val)
    except KeyboardInterrupt:
        save("last")
        if rank == 0:
            print(f"\ninterrupted at step {state['step']}; run the same command again to resume from {resume}", flush=True)
        raise
    finally:
        if log:
            log.close()
        if world > 1:
            dist.barrier()
            dist.destroy_process_group()
    return out / "best.safetensors"
