"""The app's models: which checkpoints there are, and a bounded cache of loaded ``Predictor``s.

- ``available()`` lists every checkpoint ``anodfdnet.checkpoint.list_checkpoints`` finds
  ($ANODFDNET_CHECKPOINT_DIR first, then the shipped ``checkpoints/``), so a retrained model shows up
  without code changes; ``choose(name_or_depth)`` picks one of them (never an arbitrary path: a visitor
  cannot make the server read files or download).
- ``ModelCache`` loads a model lazily on first use, once per process even when many requests ask for
  it at the same moment (one lock per checkpoint), keeps at most ``max_models`` (least recently used
  is dropped), and lets at most ``concurrency`` predictions run at once per device (a semaphore per
  device), so a burst of requests queues instead of oversubscribing the CPU or filling GPU memory.

Environment: ANODFDNET_MAX_MODELS (default 3), ANODFDNET_PREDICT_CONCURRENCY (default 1 on CPU,
whose threads one prediction already uses, 2 on a GPU), ANODFDNET_DEVICE (default auto).
"""
from __future__ import annotations

import html
import logging
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path

from anodfdnet.checkpoint import CheckpointInfo, list_checkpoints
from anodfdnet.errors import UserError
from anodfdnet.predict import Prediction, Predictor

DEFAULT_NAME = "effnet-d2"  # the ImageNet-pretrained encoder at the paper's depth L=2 (benchmarks/ACCURACY.md)

log = logging.getLogger("anodfdnet.demo")


def available() -> list[CheckpointInfo]:
    """Every readable checkpoint: the $ANODFDNET_CHECKPOINT_DIR folder first, then the shipped ones."""
    return list_checkpoints()


def short_source(spec: str) -> str:
    """A validation SPEC as a person names it, never a server path: 'deeppcb:/srv/x/trainval.txt@val' ->
    'DeepPCB', 'ba:/data/tunnel_synthetic@val' -> 'tunnel_synthetic', 'synth:1000:1:hard@val' -> 'synth hard'."""
    spec = str(spec).split("@", 1)[0]
    scheme, _, rest = spec.partition(":")
    if scheme == "synth":
        return "synth hard" if rest.endswith(":hard") else "synth"
    if scheme == "deeppcb":
        return "DeepPCB"
    if scheme == "warp":
        level, _, inner = rest.partition(":")
        return f"{short_source(inner)} moved {level}"
    if scheme == "hf":
        return "labels"
    name = Path(rest.rstrip("/")).name if rest else scheme
    return name[:24] or scheme


def label(info: CheckpointInfo) -> str:
    """What the model menu shows: name, bottleneck, depth (and objective) and size, short enough for a phone's menu; the
    figures are :func:`figures_text`'s."""
    return f"{info.name} · {info.model_summary} · {info.size_mb:.1f} MB"


def recorded_figures(info: CheckpointInfo) -> list[tuple[str, float, int | None, bool]]:
    """The validation figures the checkpoint recorded while training (its metadata, the one source of them):
    [(short source name, F1, pairs, at the calibrated threshold?)], F1 at its calibrated threshold where
    recorded, else at 0.5."""
    out = []
    for spec, m in (info.meta.get("val_metrics") or {}).items():
        if not isinstance(m, dict):
            continue
        calibrated = isinstance(m.get("f1_at_threshold"), (int, float))
        f1 = m["f1_at_threshold"] if calibrated else m.get("f1")
        if isinstance(f1, (int, float)):
            pairs = m.get("pairs") if isinstance(m.get("pairs"), int) else None
            out.append((short_source(spec), float(f1), pairs, calibrated))
    return out


def figures_text(info: CheckpointInfo) -> str:
    """One Markdown line under the model menu: what the checkpoint's recorded validation F1 is (pairs,
    threshold, input size, alignment) and the figures per source."""
    figures = recorded_figures(info)
    name = html.escape(info.name, quote=False)
    if not figures:
        return f"**{name}** records no validation figures."
    at = {c for *_, c in figures}
    threshold = f"its calibrated threshold {info.threshold:.2f}" if at == {True} else "threshold 0.5"
    size = "native size" if info.eval_size is None else f"input long side {info.eval_size} px"
    train = info.meta.get("train") if isinstance(info.meta.get("train"), dict) else {}
    align = str(train.get("align") or "off")
    per = ", ".join(f"{html.escape(src, quote=False)} {100 * f1:.1f} %" + (f" ({n} pairs)" if n else "")
                    for src, f1, n, _ in figures)
    return (f"**{name}**, validation F1 recorded in the checkpoint at {threshold} on held-out pairs of each training "
            f"set ({size}, alignment {html.escape(align, quote=False)}): {per}. The README's table evaluates every "
            "held-out pair with alignment (`checkpoints/evaluate.sh`), so its figures differ.")


def default_choice(infos: list[CheckpointInfo]) -> CheckpointInfo | None:
    """DEFAULT_NAME when present, else the first depth-2 model, else the first model."""
    for info in infos:
        if info.name == DEFAULT_NAME:
            return info
    return next((i for i in infos if i.config.depth == 2), infos[0] if infos else None)


_DEPTH = re.compile(r"^\s*(?:d|depth)?\s*(\d+)\s*$", re.IGNORECASE)


def choose(choice: str | int | float | None, infos: list[CheckpointInfo] | None = None) -> CheckpointInfo:
    """The checkpoint a request names: a listed name ('lite-d4'), a depth (4, '4', 'd4', 'depth 4'),
    a menu label, or nothing for the default. Raises UserError naming the choices otherwise."""
    infos = available() if infos is None else infos
    if not infos:
        raise UserError(
            "no model checkpoint was found: put .safetensors checkpoints in checkpoints/ or in the folder "
            "named by ANODFDNET_CHECKPOINT_DIR."
        )
    if choice is None or (isinstance(choice, str) and not choice.strip()):
        return default_choice(infos)
    if isinstance(choice, float) and choice.is_integer():
        choice = int(choice)
    text = str(choice).strip()
    for info in infos:
        if text in (info.name, label(info), info.path.name):
            return info
    text = text[:80]  # echoed in the error: the visitor's text, kept short (the page escapes it)
    m = _DEPTH.match(text)
    if m:
        depth = int(m.group(1))
        same = [i for i in infos if i.config.depth == depth]
        if same:
            return next((i for i in same if i.name.startswith("lite-")), same[0])
    names = ", ".join(f"{i.name} (depth {i.config.depth})" for i in infos)
    raise UserError(f"there is no model '{text}': choose one of {names}, or give a Transformer depth.")


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


class ModelCache:
    """Loaded predictors, at most ``max_models`` of them; thread-safe."""

    def __init__(self, max_models: int | None = None, device: str | None = None, concurrency: int | None = None):
        self.max_models = max_models or _env_int("ANODFDNET_MAX_MODELS", 3)
        self.device = device or os.environ.get("ANODFDNET_DEVICE", "auto")
        self._concurrency = concurrency
        self._models: OrderedDict[tuple, Predictor] = OrderedDict()
        self._load_locks: dict[tuple, threading.Lock] = {}
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()  # guards the three dicts above, never held while loading
        self.loads = 0  # how many times a checkpoint was read from disk (for tests and logs)

    @staticmethod
    def _key(info: CheckpointInfo) -> tuple:
        p = Path(info.path).resolve()
        return str(p), p.stat().st_mtime_ns  # a file replaced in place is a new model

    def get(self, info: CheckpointInfo) -> Predictor:
        """The predictor for a checkpoint, loading it if this process has not yet (once, under a lock)."""
        key = self._key(info)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            load_lock = self._load_locks.setdefault(key, threading.Lock())
        with load_lock:
            with self._lock:  # another request may have loaded it while this one waited
                if key in self._models:
                    self._models.move_to_end(key)
                    return self._models[key]
            try:
                predictor = Predictor(info.path, device=self.device)
            except Exception:  # the server's log gets the path and the reason; the visitor gets the name
                log.exception("loading the checkpoint %s (%s) failed", info.name, info.path)
                raise UserError(f"the model '{info.name}' could not be loaded on the server; its log says why.") from None
            with self._lock:
                self.loads += 1
                self._models[key] = predictor
                while len(self._models) > self.max_models:
                    self._models.popitem(last=False)
                self._load_locks.pop(key, None)
            return predictor

    def _semaphore(self, predictor: Predictor) -> threading.BoundedSemaphore:
        dev = str(predictor.device)
        with self._lock:
            if dev not in self._semaphores:
                n = self._concurrency or _env_int(
                    "ANODFDNET_PREDICT_CONCURRENCY", 2 if predictor.device.type == "cuda" else 1
                )
                self._semaphores[dev] = threading.BoundedSemaphore(n)
            return self._semaphores[dev]

    def run(self, info: CheckpointInfo, history, current, align: str | None = None) -> tuple[Prediction, Predictor]:
        """Run one pair through the checkpoint's model, waiting for a free slot on its device; ``align``: the
        alignment mode (anodfdnet.align; None: the predictor's, auto)."""
        predictor = self.get(info)
        with self._semaphore(predictor):
            return predictor.run(history, current, align=align), predictor

    def loaded(self) -> list[str]:
        with self._lock:
            return [Path(k[0]).name for k in self._models]


_SHARED: ModelCache | None = None
_SHARED_LOCK = threading.Lock()


def shared_cache() -> ModelCache:
    """The process's one model cache, shared by every tab so each model loads once."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = ModelCache()
        return _SHARED


class _Shared:
    """``predict(history, current) -> prob`` on the shared cache, within the device's prediction limit."""

    def __init__(self, cache: ModelCache, info: CheckpointInfo):
        self.cache, self.info = cache, info

    @property
    def threshold(self) -> float:
        """The checkpoint's calibrated threshold (the uncertainty order of the Label queue centres on it)."""
        return self.info.threshold

    def predict(self, history, current):
        return self.cache.run(self.info, history, current)[0].prob


def shared_predictor(ref: str) -> _Shared:
    """For other tabs (the Label tab's ``predictor`` argument): a checkpoint reference (a path or a
    listed name) -> an object with ``predict(history, current) -> prob`` backed by the shared cache."""
    from anodfdnet.checkpoint import read_info, resolve

    return _Shared(shared_cache(), read_info(resolve(ref)))
