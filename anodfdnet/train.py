"""Training: the paper's set-up (batch 4, joint flip/rot180 augmentation, images in [-1, 1], keep the epoch
with the best validation F1) with a choice of recipe (``anodfdnet/recipes.py``: ``paper`` is the paper's
Adam 2e-4 with betas (0.5, 0.999) and BCE; ``fast`` is AdamW with warm-up and cosine decay and BCE + Dice).

Made to get the most out of a CPU-hour: decoded pairs are cached on disk (``pair_cache``), the model runs
channels-last and, where the CPU has native bf16 and it measured faster, under bf16 autocast; the logit
bias starts at the anomaly prior, so the first hundreds of steps are not spent learning that anomalies are
rare; ``budget_minutes`` stops a run after that much CPU time of training (the schedule decays over it).
After each validation the threshold that maximises the mean validation F1 over the sources is computed
from the pixel histograms and stored in the checkpoint as its calibrated ``threshold``.

The bottleneck (``bottleneck``: the paper's Transformer or FOD's I2Correlation) and the objective
(``objective``: supervised on masks, or ``normal``: pairs without anomalies only, the anomaly map being the
I2Correlation discrepancy score; ``anodfdnet/objective.py``) are recorded in the checkpoint.

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
from .data.aligned import aligned
from .device import pick_device
from .errors import UserError
from .data.pair_cache import cached
from .evaluate import accumulate
from .metrics import best_threshold
from .data.normal import normal_spec
from .models import ModelConfig, build_model, count_parameters
from .objective import auxiliary_loss, calibrate_score, check_objective, normal_loss
from .recipes import get_recipe, make_optimizer, set_lr


@dataclass
class TrainConfig:
    data: list[str]
    out: str
    val: list[str] | None = None  # None: hold out val_fraction of each --data source
    val_fraction: float = 0.2
    arch: str = "anodfdnet"
    preset: str = "lite"
    depth: int = 2
    bottleneck: str = "transformer"  # "transformer" (the paper's) or "i2c" (FOD's I2Correlation, models/i2c.py)
    objective: str = "supervised"  # "supervised" (masks) or "normal" (pairs without anomalies only; objective.py)
    size: int = 256  # training input size
    mode: str = "resize"  # "resize" whole pairs to size, or "crop" size x size at native resolution
    eval_size: int | None = None  # validation input long side; None = native (crop) or `size` (resize)
    epochs: int = 100
    steps_per_epoch: int | None = None  # cap on optimizer steps per epoch (None: one pass over the data)
    batch: int = 4
    recipe: str = "fast"  # "fast" or "paper" (anodfdnet/recipes.py)
    lr: float | None = None  # None: the recipe's peak rate
    loss: str | None = None  # None: the recipe's; "bce" (the paper's) or "bce+dice"
    init: str | None = None  # a checkpoint to start from (weights of matching shape are loaded)
    pretrained: bool = True  # ImageNet weights for a pretrained-capable encoder (efficientnet-lite0)
    prior: str = "auto"  # initial logit bias: "auto" (the training masks' anomaly share), "none", or a share
    precision: str = "auto"  # "auto", "fp32" or "bf16" (autocast)
    channels_last: bool | None = None  # None: on the CPU
    cache: bool = True  # decoded pairs on disk (anodfdnet/pair_cache.py)
    augment: str = "nuisance"  # "geometric" (the paper's flips) or "nuisance" (also viewpoint, scale, photometry; crop mode)
    budget_minutes: float | None = None  # stop after this much CPU time of training (all threads)
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    device: str = "auto"
    seed: int = 0
    workers: int = 2
    val_limit: int | None = None  # validate on the first N pairs of each val source
    save_every: int = 200  # steps between mid-epoch saves of last.safetensors / resume.pt
    align: str = "off"  # align each training and validation history to its current (anodfdnet.align); in the metadata
    encoder_lr: float | None = None  # the encoder's rate as a share of the peak; 0 freezes it (None: the recipe's
    #                                   share for an ImageNet encoder trained from its weights, else 1)
    rot90: bool = False  # crop mode: also the quarter turns (the eight symmetries of a square) as augmentation
    frozen_norm: bool = False  # keep every BatchNorm's running statistics (eval mode) while the weights learn
    progress: bool = True
    extra_meta: dict = field(default_factory=dict)

    def resolved_eval_size(self) -> int | None:
        if self.eval_size is not None:
            return self.eval_size
        return None if self.mode == "crop" else self.size


def model_choice(arch: str | None, preset: str | None, depth: int | None, init: str | None,
                 bottleneck: str | None = None) -> tuple[str, str, int, str]:
    """(arch, preset, depth, bottleneck) to train: as given; what is not given comes from the ``init`` checkpoint
    when there is one, else anodfdnet, lite, depth 2 and the Transformer (the ``train`` command's --arch,
    --preset, --depth, --bottleneck and --init)."""
    if init:
        cfg0 = read_info(resolve(init)).config
        arch, preset, depth = arch or cfg0.arch, preset or cfg0.preset, cfg0.depth if depth is None else depth
        bottleneck = bottleneck or cfg0.bottleneck
    return arch or "anodfdnet", preset or "lite", 2 if depth is None else depth, bottleneck or "transformer"


def model_config(cfg: "TrainConfig") -> ModelConfig:
    """The ModelConfig a training run builds (a UserError for a combination that does not exist)."""
    check_objective(cfg.objective, cfg.bottleneck, cfg.arch)
    try:
        return ModelConfig.from_preset(cfg.preset, cfg.depth, arch=cfg.arch, bottleneck=cfg.bottleneck, objective=cfg.objective)
    except ValueError as e:
        raise UserError(f"{e}.") from None


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


def resolve_precision(cfg: TrainConfig, device: torch.device) -> str:
    """``auto``: bf16 on CUDA; on a CPU with native bf16, bf16 for models of dense convolutions (the DCGAN
    encoder, whose training step it makes ~1.4x faster, and the baselines), and fp32 for EfficientNet-Lite0,
    whose depthwise convolutions train slower in bf16 than in fp32 channels-last on that CPU
    (benchmarks/TRAINING.md), unless the encoder is frozen (a step of effnet-d2 on 4 crops of 128 with the
    encoder frozen: 75 ms in bf16 against 105 ms in fp32, one thread on the AMD EPYC; 250 ms unfrozen);
    fp32 on other CPUs, where bf16 is only emulated."""
    if cfg.precision in ("fp32", "bf16"):
        return cfg.precision
    if cfg.precision != "auto":
        raise UserError(f"unknown precision '{cfg.precision}': use auto, fp32 or bf16.")
    if device.type == "cuda":
        return "bf16"
    from .inference.runtime import native_cpu_bf16

    encoder = model_config(cfg).encoder
    frozen = cfg.encoder_lr == 0  # no backward through the depthwise convolutions: bf16 is faster then (adaptation)
    return "bf16" if native_cpu_bf16() and (not encoder.startswith("efficientnet-lite") or frozen) else "fp32"


def anomaly_prior(source, limit: int = 200) -> float:
    """The share of anomalous pixels over (up to ``limit``, evenly spaced) training pairs with masks."""
    n = len(source)
    idx = sorted({int(i * n / min(n, limit)) for i in range(min(n, limit))})
    pos = tot = 0
    for i in idx:
        m = source[i].mask
        if m is not None:
            pos += int(m.sum())
            tot += m.size
    return pos / tot if tot else 0.0


def logit_head(model: torch.nn.Module) -> torch.nn.Module | None:
    """The last one-channel convolution with a bias: the layer whose bias sets the output's prior."""
    head = None
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and m.out_channels == 1 and m.bias is not None:
            head = m
    return head


def set_prior(model: torch.nn.Module, share: float) -> float | None:
    """Start the logits at log(p / (1 - p)) (as detection models do), so an untrained model already predicts
    the anomalies' rarity; returns the bias set, or None when the model has no such head or p is 0."""
    head = logit_head(model)
    if head is None or not 0.0 < share < 1.0:
        return None
    bias = math.log(share / (1.0 - share))
    with torch.no_grad():
        head.bias.fill_(bias)
    return bias


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
    """Training source and the validation sources ({spec: source}), split deterministically by seed.

    The normal objective reads every --data SPEC as ``normal:SPEC`` and validates only on the labelled --val
    SPECs given (none: no validation), whose pairs then calibrate the threshold."""
    train_parts, val_sources = [], {}
    data = cfg.data
    if cfg.objective == "normal":
        data = [normal_spec(s) for s in cfg.data]
        if cfg.val is None:
            cfg.val = []
    for spec in data:
        src = parse_spec(spec)
        if cfg.val is None:
            tr, va = split(src, cfg.val_fraction, 0)  # seed 0, as SPECs' @train / @val: held-out pairs stay held out
            train_parts.append(tr)
            val_sources[spec] = va
        else:
            train_parts.append(src)
    for spec in cfg.val or []:
        val_sources[spec] = parse_spec(spec)
    train_parts = [aligned(p, cfg.align) for p in train_parts]  # validation aligns in evaluate.accumulate
    if cfg.cache:
        train_parts = [cached(p) for p in train_parts]
        val_sources = {spec: cached(src) for spec, src in val_sources.items()}
    train_source = train_parts[0] if len(train_parts) == 1 else ConcatSource(train_parts)
    if len(train_source) == 0:
        raise UserError("the training data is empty after the validation split.")
    return train_source, val_sources


def _initial_model(cfg: TrainConfig) -> torch.nn.Module:
    model = build_model(model_config(cfg))
    if cfg.pretrained and not cfg.init and getattr(model.config, "encoder", "").startswith("efficientnet-lite"):
        from .models.efficientnet_lite import load_imagenet

        load_imagenet(model.encoder)
    if cfg.init:
        init_model, _ = load_checkpoint(cfg.init)
        own = model.state_dict()
        matched = {k: v for k, v in init_model.state_dict().items() if k in own and own[k].shape == v.shape}
        if not matched:
            raise UserError(f"--init '{cfg.init}' shares no weights with a {cfg.arch} {cfg.preset} depth-{cfg.depth} model.")
        model.load_state_dict(matched, strict=False)
    return model


def _validate(model, val_sources, eval_size, device, cfg):
    """Per-source metrics at 0.5 (the paper's) and at the threshold calibrated on these pairs, run on the
    inference path the app and ``predict`` use by default (``auto``), so the threshold fits what is served."""
    from .inference.runtime import build_runtime

    forward = build_runtime(model, None, device, "auto")
    acc = {spec: accumulate(model, src, eval_size, device, limit=cfg.val_limit, progress=cfg.progress, desc=f"val {spec}",
                            forward=forward, align=cfg.align) for spec, src in val_sources.items()}
    threshold, mean_f1 = best_threshold(list(acc.values()))
    val = {}
    for spec, m in acc.items():
        at = m.at(threshold)
        val[spec] = {**m.compute(), "f1_at_threshold": at["f1"], "iou_at_threshold": at["iou"]}
    return val, threshold, mean_f1


def encoder_rate(cfg: TrainConfig, recipe) -> float:
    """The encoder's learning rate as a share of the peak (``TrainConfig.encoder_lr``; 0 = frozen)."""
    if cfg.encoder_lr is not None:
        if not 0.0 <= cfg.encoder_lr <= 10.0:
            raise UserError(f"the encoder's rate share must lie in [0, 10], got {cfg.encoder_lr}.")
        return float(cfg.encoder_lr)
    if cfg.objective == "normal":
        return 0.0  # frozen, as FOD's backbone: the patch discrepancy compares its features, which must not collapse
    pretrained = cfg.pretrained and not cfg.init and model_config(cfg).encoder != "dcgan"
    return recipe.encoder_lr if pretrained else 1.0


def freeze_encoder(model: torch.nn.Module) -> int:
    """Stop the encoder's weights from learning (no gradients, BatchNorm statistics kept); returns how many
    tensors were frozen. Backpropagation then stops at the differences, which makes a step much cheaper."""
    frozen = 0
    for name, p in model.named_parameters():
        if name.startswith("encoder."):
            p.requires_grad_(False)
            frozen += 1
    if not frozen:
        raise UserError(f"a {getattr(model.config, 'arch', type(model).__name__)} model has no shared encoder to freeze.")
    return frozen


def keep_norm_statistics(model: torch.nn.Module) -> None:
    """Every BatchNorm normalises with its running statistics and stops updating them (its scale and shift
    still learn). Fine-tuning on a few pairs in batches of four would otherwise replace statistics gathered
    over the whole training mix within some tens of steps, and the old domains with them."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def train(cfg: TrainConfig, sources: tuple | None = None) -> Path:
    """Train; returns the path of the best-validation-F1 checkpoint.

    ``sources``: (training source, {name: validation source}) built by the caller instead of from
    ``cfg.data`` / ``cfg.val`` (adaptation mixes its own); ``cfg.data`` then only documents them. With no
    validation source every epoch's end is kept as ``best`` (the last state), and the threshold stays the
    one the run started with (``--init``'s, else 0.5)."""
    rank, world, device = _dist_setup(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    recipe = get_recipe(cfg.recipe)
    loss_kind = cfg.loss or recipe.loss
    if loss_kind not in LOSSES:
        raise UserError(f"unknown loss '{loss_kind}': use one of {', '.join(LOSSES)}.")
    precision = resolve_precision(cfg, device)
    channels_last = device.type == "cpu" if cfg.channels_last is None else cfg.channels_last
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    train_source, val_sources = sources if sources is not None else build_sources(cfg)
    if cfg.augment not in ("geometric", "nuisance"):
        raise UserError(f"unknown augmentation '{cfg.augment}': use geometric or nuisance.")
    dataset = PairDataset(train_source, size=cfg.size, mode=cfg.mode, augment=True, seed=cfg.seed,
                          nuisance=cfg.augment == "nuisance" and cfg.mode == "crop", rot90=cfg.rot90 and cfg.mode == "crop")
    model = _initial_model(cfg)
    enc_rate = encoder_rate(cfg, recipe)
    if enc_rate == 0:
        freeze_encoder(model)
    prior = None
    if not cfg.init and cfg.prior != "none" and cfg.objective == "supervised":
        share = anomaly_prior(train_source) if cfg.prior == "auto" else float(cfg.prior)
        prior = set_prior(model, share)
    model = model.to(device, memory_format=memory_format)
    opt = make_optimizer(model, recipe, cfg.lr, encoder_lr=enc_rate)
    start_threshold = read_info(resolve(cfg.init)).threshold if cfg.init else 0.5
    state = {"epoch": 0, "batch_in_epoch": 0, "step": 0, "best_f1": -1.0, "best_val": None, "cpu_seconds": 0.0,
             "threshold": start_threshold}
    resume = out / "resume.pt"
    if resume.exists():
        ckpt = torch.load(resume, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        state = {**state, **ckpt["state"]}
        if rank == 0:
            print(f"resuming from {resume}: epoch {state['epoch'] + 1}, step {state['step']}", flush=True)
    net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
              find_unused_parameters=cfg.objective == "normal") if world > 1 else model  # normal: no decoder
    eval_size = cfg.resolved_eval_size()
    per_epoch = cfg.steps_per_epoch or len(dataset) // (cfg.batch * world)
    total_steps = max(cfg.epochs * per_epoch, 1)
    budget = cfg.budget_minutes * 60 if cfg.budget_minutes else None
    meta_base = {
        "arch": cfg.arch, "bottleneck": cfg.bottleneck, "objective": cfg.objective, "data": cfg.data, "val": list(val_sources), "eval_size": eval_size, "align": cfg.align,
        "train": {k: v for k, v in asdict(cfg).items() if k not in ("out", "progress", "extra_meta")},
        "recipe": recipe.name, "precision": precision, "prior_bias": prior, "encoder_lr": enc_rate, "frozen_norm": cfg.frozen_norm,
        "parameters": count_parameters(model), **cfg.extra_meta,
    }

    def progress() -> float:
        p = state["step"] / total_steps
        return max(p, state["cpu_seconds"] / budget) if budget else p

    def save(kind: str, val=None):
        if rank != 0:
            return
        meta = {**meta_base, "steps": state["step"], "epochs": state["epoch"], "train_cpu_minutes": round(state["cpu_seconds"] / 60, 2),
                "val_metrics": val or state["best_val"] or {}, "threshold": state["threshold"] if val is None else val_threshold}
        save_checkpoint(out / f"{kind}.safetensors", model, meta)
        if kind == "last":
            tmp = resume.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state}, tmp)
            os.replace(tmp, resume)

    val_threshold = state["threshold"]
    log = open(out / "log.jsonl", "a") if rank == 0 else None
    if rank == 0:
        print(f"training {cfg.arch} {cfg.preset} depth {cfg.depth}"
              + (f" {cfg.bottleneck} bottleneck" if cfg.arch == "anodfdnet" else "")
              + (", objective normal (pairs without anomalies)" if cfg.objective == "normal" else "")
              + f" ({count_parameters(model) / 1e6:.2f}M parameters) on "
              f"{len(dataset)} pairs, " + (f"validating on {', '.join(f'{s} ({len(v)})' for s, v in val_sources.items())}"
                                            if val_sources else "no validation (the last state is kept)") + f"; device {device}, "
              f"world {world}, recipe {recipe.name}, {precision}{' channels-last' if channels_last else ''}, "
              f"{torch.get_num_threads()} threads" + (f", prior bias {prior:.2f}" if prior is not None else "")
              + (f", budget {cfg.budget_minutes:g} CPU min" if budget else ""), flush=True)
    out_of_budget = lambda: budget is not None and state["cpu_seconds"] >= budget  # noqa: E731
    try:
        while state["epoch"] < cfg.epochs and not out_of_budget():
            epoch = state["epoch"]
            sampler = EpochBatches(len(dataset), cfg.batch, cfg.seed, epoch, rank, world, cfg.steps_per_epoch, state["batch_in_epoch"])
            loader = DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.workers, pin_memory=device.type == "cuda",
                                persistent_workers=False)
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress or rank != 0, unit="batch",
                       initial=state["batch_in_epoch"], total=state["batch_in_epoch"] + len(sampler))
            model.train()
            if enc_rate == 0:
                model.encoder.eval()  # a frozen encoder keeps its BatchNorm statistics too
            if cfg.frozen_norm:
                keep_norm_statistics(model)
            running = None
            t_epoch, steps_epoch = time.perf_counter(), 0
            cpu0 = time.process_time()
            for b in bar:
                h, c, m = (b[k].to(device, non_blocking=True) for k in ("history", "current", "mask"))
                h, c = h.contiguous(memory_format=memory_format), c.contiguous(memory_format=memory_format)
                set_lr(opt, recipe, progress())
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                    logits = net(h, c)
                if cfg.objective == "normal":
                    loss = normal_loss(model)
                else:
                    loss = loss_fn(logits.float(), m, loss_kind)
                    aux = auxiliary_loss(model)
                    if aux is not None:
                        loss = loss + aux
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                state["step"] += 1
                state["batch_in_epoch"] += 1
                steps_epoch += 1
                cpu1 = time.process_time()
                state["cpu_seconds"] += cpu1 - cpu0
                cpu0 = cpu1
                running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
                bar.set_postfix(loss=f"{running:.4f}", best_f1=f"{max(state['best_f1'], 0):.3f}")
                if cfg.save_every and state["step"] % cfg.save_every == 0:
                    save("last")
                if out_of_budget():
                    break
            seconds = time.perf_counter() - t_epoch
            if world > 1:  # BatchNorm running statistics drift apart per rank after the last step: take rank 0's
                for buf in model.buffers():
                    dist.broadcast(buf, 0)
            if cfg.objective == "normal":  # the score's logit scale, from normal training pairs
                calibrate_score(model, DataLoader(PairDataset(train_source, size=cfg.size, mode=cfg.mode, augment=False,
                                                              seed=cfg.seed), batch_size=cfg.batch), device)
            if val_sources:
                val, val_threshold, mean_f1 = _validate(model, val_sources, eval_size, device, cfg)
            else:  # nothing to validate on: the last state is the one kept, its threshold the starting one
                val, val_threshold, mean_f1 = {}, state["threshold"], state["best_f1"] + 1.0
            state["threshold"] = val_threshold
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
            if rank == 0:
                record = {"epoch": state["epoch"], "step": state["step"], "loss": running, "val_f1": mean_f1,
                          "threshold": val_threshold, "val": val, "cpu_minutes": state["cpu_seconds"] / 60,
                          "steps_per_s": steps_epoch / seconds if seconds > 0 else None,
                          "pairs_per_s": steps_epoch * cfg.batch * world / seconds if seconds > 0 else None,
                          "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
                log.write(json.dumps(record) + "\n")
                log.flush()
                tqdm.write(f"epoch {state['epoch']}: loss {running if running is not None else float('nan'):.4f}  "
                           f"threshold {val_threshold:.2f}  " + "  ".join(
                               f"{s}: F1 {v['f1']:.4f} / {v['f1_at_threshold']:.4f}" for s, v in val.items()))
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
