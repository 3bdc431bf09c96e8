"""Data sources of history/current pairs, named by one SPEC string, and the training dataset.

A SPEC is ``SCHEME:ARGUMENT``, split at the first colon; :func:`parse_spec` is the one parser and
:func:`register_source` the one way a scheme comes to exist (the built-in schemes below register
themselves exactly as ``synth`` and ``hf`` do from their own modules). A spec may end in ``@train``
or ``@val`` (optionally ``@val(val_fraction=0.3,seed=1)``) to name one side of :func:`split`, which
is the spec a split's :class:`Subset` reports, so recorded specs parse back to the same pairs.

Built-in schemes:

* ``pairs:ROOT``  one folder per pair under ROOT (the paper code's layout) holding ``hist.*``,
  ``cur.*`` and, optionally, ``cur_gt.png``; sorted by folder name.
* ``ab:ROOT``     ``ROOT/A/NAME.*`` (history), ``ROOT/B/NAME.*`` (current) and optionally
  ``ROOT/label/NAME.*`` (mask), matched by file stem.  ``ba:ROOT`` is the same with A and B swapped
  (history = B, current = A), e.g. ``ba:../shared/data/tunnel_synthetic``.
* ``deeppcb:LISTFILE``  a DeepPCB list file; masks derived from the boxes (see :class:`DeepPCBSource`).

A :class:`Source` is a lazy sequence of :class:`Pair` objects: constructing one only lists files;
images are read in ``__getitem__``. :class:`PairDataset` turns a source into model-ready tensors with
the paper's augmentation.
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np
import torch

from . import augment
from .errors import UserError
from .images import (
    IMAGE_EXTENSIONS,
    ImageSource,
    load_mask,
    load_rgb,
    mask_to_tensor,
    resize_mask,
    resize_rgb,
    to_tensor,
)

# ----------------------------------------------------------------------------------------------
# Pairs and sources


@dataclass
class Pair:
    """One history/current pair. ``mask`` is in current-image coordinates, or None when unlabelled."""

    name: str
    history: np.ndarray  # uint8 HxWx3, same size as current
    current: np.ndarray  # uint8 HxWx3
    mask: np.ndarray | None  # bool HxW


def load_pair(
    name: str, history: ImageSource, current: ImageSource, mask: ImageSource | None = None
) -> Pair:
    """Read a pair from paths (or PIL images / arrays) and bring it to the pair conventions.

    A history whose size differs from the current is resized to the current's size; a mask whose
    size differs from the current is a ``UserError`` naming the mask.
    """
    cur = load_rgb(current)
    hist = load_rgb(history)
    if hist.shape[:2] != cur.shape[:2]:
        hist = resize_rgb(hist, cur.shape[:2])
    m = None
    if mask is not None:
        m = load_mask(mask)
        if m.shape != cur.shape[:2]:
            what = f"mask '{mask}'" if isinstance(mask, (str, os.PathLike)) else f"the mask of pair '{name}'"
            raise UserError(
                f"{what} is {m.shape[1]}x{m.shape[0]} but its current image is "
                f"{cur.shape[1]}x{cur.shape[0]} (width x height); a mask must match the current image."
            )
    return Pair(name=name, history=hist, current=cur, mask=m)


class Source:
    """A lazy, sequence-like collection of pairs named by a SPEC.

    Subclasses set ``spec`` and ``names`` in ``__init__`` and implement ``_load(i) -> Pair`` for a
    non-negative index (or override ``__getitem__`` themselves). ``key(i)`` is the pair's stable
    identity used by :func:`split`; it is the name unless a subclass knows better.
    """

    spec: str
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> Pair:
        return self._load(self._index(i))

    def __iter__(self) -> Iterator[Pair]:
        for i in range(len(self)):
            yield self[i]

    def key(self, i: int) -> str:
        return self.names[self._index(i)]

    def _load(self, i: int) -> Pair:
        raise NotImplementedError

    def _index(self, i: int) -> int:
        n = len(self)
        i = int(i)
        if not -n <= i < n:
            raise IndexError(f"pair index {i} out of range for {n} pairs in '{self.spec}'")
        return i % n

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, {len(self)} pairs)"


class Subset(Source):
    """A view of some pairs of another source, in the given order."""

    def __init__(self, source: Source, indices: Sequence[int], spec: str):
        self.source = source
        self.indices = [int(i) for i in indices]
        self.spec = spec
        self.names = [source.names[i] for i in self.indices]

    def key(self, i: int) -> str:
        return self.source.key(self.indices[self._index(i)])

    def _load(self, i: int) -> Pair:
        return self.source[self.indices[i]]


class ConcatSource(Source):
    """Several sources one after another (several ``--data`` SPECs). Names and keys are the parts'."""

    def __init__(self, sources: Sequence[Source]):
        self.sources = list(sources)
        if not self.sources:
            raise ValueError("ConcatSource needs at least one source")
        self.spec = " + ".join(s.spec for s in self.sources)
        self.names = [n for s in self.sources for n in s.names]
        self._where = [(j, i) for j, s in enumerate(self.sources) for i in range(len(s))]

    def key(self, i: int) -> str:
        j, k = self._where[self._index(i)]
        return self.sources[j].key(k)

    def _load(self, i: int) -> Pair:
        j, k = self._where[i]
        return self.sources[j][k]


# ----------------------------------------------------------------------------------------------
# The SPEC registry and parser


@dataclass(frozen=True)
class _Scheme:
    factory: Callable[[str, str], Source]
    help: str


_SCHEMES: dict[str, _Scheme] = {}
_SPLIT_SUFFIX = re.compile(
    r"^(?P<base>.+)@(?P<side>train|val)(?:\(val_fraction=(?P<frac>[0-9.eE+-]+),seed=(?P<seed>-?\d+)\))?$"
)


def register_source(scheme: str, factory: Callable[[str, str], Source], help: str) -> None:
    """Make ``SCHEME:ARGUMENT`` specs build sources with ``factory(argument, full_spec)``.

    ``help`` is one line shown by :func:`spec_help`, e.g. ``"ab:ROOT  ROOT/A, ROOT/B, ROOT/label"``.
    Registering a scheme again replaces it (so reloading a module is harmless).
    """
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", scheme):
        raise ValueError(f"scheme names are lower-case words without a colon, got {scheme!r}")
    _SCHEMES[scheme] = _Scheme(factory, help)


# Modules of this package that register schemes of their own when imported (synth:, hf:). The
# registry imports them on first use, so every entry point (CLI, app, retraining) knows every scheme.
_PLUGIN_MODULES = ("synth", "labels", "warped")


def _load_plugins() -> None:
    import importlib

    for name in _PLUGIN_MODULES:
        importlib.import_module(f"{__package__}.{name}")


def known_schemes() -> list[str]:
    """The registered scheme names, sorted."""
    _load_plugins()
    return sorted(_SCHEMES)


def spec_help() -> str:
    """A few lines documenting every registered scheme (for the CLI's --help)."""
    lines = ["Data SPECs are SCHEME:ARGUMENT; add @train or @val to take one side of the split."]
    lines += [f"  {_SCHEMES[s].help}" for s in known_schemes()]  # known_schemes() loads the plugins
    return "\n".join(lines)


def parse_spec(spec: str) -> Source:
    """Build the source a SPEC names; a bad SPEC is a ``UserError`` that says what is wrong."""
    spec = str(spec).strip()
    m = _SPLIT_SUFFIX.match(spec)
    if m and ":" in m["base"]:
        frac = float(m["frac"]) if m["frac"] else 0.2
        seed = int(m["seed"]) if m["seed"] else 0
        train, val = split(parse_spec(m["base"]), frac, seed)
        return train if m["side"] == "train" else val
    known = ", ".join(known_schemes()) or "(none registered)"  # also loads the plugin schemes
    scheme, colon, arg = spec.partition(":")
    if not colon:
        raise UserError(f"data spec '{spec}' has no scheme: write SCHEME:ARGUMENT with SCHEME one of {known}.")
    if scheme not in _SCHEMES:
        raise UserError(f"data spec '{spec}' has the unknown scheme '{scheme}': use one of {known}.")
    if not arg.strip():
        raise UserError(f"data spec '{spec}' has nothing after '{scheme}:': {_SCHEMES[scheme].help.strip()}.")
    return _SCHEMES[scheme].factory(arg.strip(), spec)


# ----------------------------------------------------------------------------------------------
# Built-in sources


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _existing_dir(path: str, spec: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"data spec '{spec}': the folder '{p}' does not exist.")
    if not p.is_dir():
        raise UserError(f"data spec '{spec}': '{p}' is not a folder.")
    return p


def _one(folder: Path, stem: str, spec: str) -> Path | None:
    """The single image file ``folder/stem.*``, None when there is none."""
    found = sorted(p for p in folder.glob(f"{glob.escape(stem)}.*") if _is_image(p))
    if len(found) > 1:
        raise UserError(
            f"data spec '{spec}': '{folder}' holds several '{stem}.*' images "
            f"({', '.join(p.name for p in found)}); keep one."
        )
    return found[0] if found else None


class PairFolderSource(Source):
    """``pairs:ROOT``: one folder per pair, ``hist.*``, ``cur.*`` and optionally ``cur_gt.png``."""

    def __init__(self, root: str, spec: str):
        self.spec = spec
        self.root = _existing_dir(root, spec)
        self.files: list[tuple[Path, Path, Path | None]] = []
        self.names = []
        for d in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            hist, cur = _one(d, "hist", spec), _one(d, "cur", spec)
            if hist is None or cur is None:
                missing = "hist.*" if hist is None else "cur.*"
                raise UserError(f"data spec '{spec}': the pair folder '{d}' has no {missing} image.")
            gt = _one(d, "cur_gt", spec)
            self.files.append((hist, cur, gt))
            self.names.append(d.name)
        if not self.names:
            raise UserError(f"data spec '{spec}': '{self.root}' holds no pair folders (each with hist.* and cur.*).")

    def _load(self, i: int) -> Pair:
        hist, cur, gt = self.files[i]
        return load_pair(self.names[i], hist, cur, gt)


class ABSource(Source):
    """``ab:ROOT`` / ``ba:ROOT``: ``A/``, ``B/`` and optional ``label/`` folders matched by stem.

    With ``swap=False`` A is the history and B the current; with ``swap=True`` the reverse.
    When ``label/`` exists every pair must have a label there.
    """

    def __init__(self, root: str, spec: str, swap: bool = False):
        self.spec = spec
        self.root = _existing_dir(root, spec)
        self.swap = swap
        folders = {}
        for sub in ("A", "B"):
            d = self.root / sub
            if not d.is_dir():
                raise UserError(f"data spec '{spec}': '{self.root}' has no {sub}/ folder (expected A/, B/ and optionally label/).")
            folders[sub] = self._by_stem(d)
        a, b = folders["A"], folders["B"]
        only = sorted(set(a) ^ set(b))
        if only:
            first, other = (a[only[0]], "B") if only[0] in a else (b[only[0]], "A")
            raise UserError(
                f"data spec '{spec}': {len(only)} images have no counterpart of the same name in the "
                f"other folder (e.g. '{first}' has none in {other}/)."
            )
        self.names = sorted(a)
        if not self.names:
            raise UserError(f"data spec '{spec}': '{self.root / 'A'}' holds no images.")
        self.labels: dict[str, Path] | None = None
        if (self.root / "label").is_dir():
            self.labels = self._by_stem(self.root / "label")
            missing = [n for n in self.names if n not in self.labels]
            if missing:
                raise UserError(
                    f"data spec '{spec}': {len(missing)} pairs have no label in "
                    f"'{self.root / 'label'}' (e.g. '{missing[0]}'); label all pairs or remove the folder."
                )
        self._a, self._b = a, b

    def _by_stem(self, d: Path) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for p in sorted(d.iterdir()):
            if not _is_image(p):
                continue
            if p.stem in out:
                raise UserError(
                    f"data spec '{self.spec}': '{d}' holds both '{out[p.stem].name}' and '{p.name}'; keep one."
                )
            out[p.stem] = p
        return out

    def _load(self, i: int) -> Pair:
        n = self.names[i]
        hist, cur = (self._b[n], self._a[n]) if self.swap else (self._a[n], self._b[n])
        return load_pair(n, hist, cur, self.labels[n] if self.labels is not None else None)


class DeepPCBSource(Source):
    """``deeppcb:LISTFILE``: DeepPCB pairs with pixel masks derived from the defect boxes.

    Each list line is ``IMAGE ANNOTATION`` with paths relative to the list file's folder; the image
    name ``NNNNNNNN.jpg`` stands for ``NNNNNNNN_temp.jpg`` (history) and ``NNNNNNNN_test.jpg``
    (current). Annotation lines are ``x1 y1 x2 y2 type`` (commas tolerated). The mask recipe is
    exact for this set: binarise both images at 127, XOR them, and keep only the XOR pixels inside
    the union of the boxes (coordinates inclusive, clipped to the image).
    """

    def __init__(self, listfile: str, spec: str):
        self.spec = spec
        self.listfile = Path(listfile).expanduser()
        if not self.listfile.is_file():
            what = "is a folder, not a list file" if self.listfile.is_dir() else "does not exist"
            raise UserError(f"data spec '{spec}': the list file '{self.listfile}' {what}.")
        base = self.listfile.parent
        self.files: list[tuple[Path, Path, Path]] = []
        self.names = []
        try:
            text = self.listfile.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read list file '{self.listfile}': {e}.") from None
        for lineno, line in enumerate(text.splitlines(), 1):
            fields = line.replace(",", " ").split()
            if not fields:
                continue
            if len(fields) != 2:
                raise UserError(
                    f"list file '{self.listfile}' line {lineno} should be 'IMAGE ANNOTATION', got '{line.strip()}'."
                )
            img, ann = base / fields[0], base / fields[1]
            hist = img.with_name(f"{img.stem}_temp{img.suffix}")
            cur = img.with_name(f"{img.stem}_test{img.suffix}")
            for p in (hist, cur, ann):
                if not p.is_file():
                    raise UserError(f"list file '{self.listfile}' line {lineno} names '{p}', which does not exist.")
            self.files.append((hist, cur, ann))
            self.names.append(img.stem)
        if not self.names:
            raise UserError(f"data spec '{spec}': the list file '{self.listfile}' lists no pairs.")

    def _load(self, i: int) -> Pair:
        hist_path, cur_path, ann = self.files[i]
        pair = load_pair(self.names[i], hist_path, cur_path)
        pair.mask = deeppcb_mask(pair.history, pair.current, read_deeppcb_boxes(ann))
        return pair


def read_deeppcb_boxes(path: str | os.PathLike) -> list[tuple[int, int, int, int]]:
    """The ``(x1, y1, x2, y2)`` boxes of a DeepPCB annotation file (``x1 y1 x2 y2 type`` lines)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read annotation file '{path}': {e}.") from None
    boxes = []
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.replace(",", " ").split()
        if not fields:
            continue
        try:
            if len(fields) < 4:
                raise ValueError
            x1, y1, x2, y2 = (int(round(float(f))) for f in fields[:4])
        except ValueError:
            raise UserError(
                f"annotation file '{path}' line {lineno} should be 'x1 y1 x2 y2 type', got '{line.strip()}'."
            ) from None
        boxes.append((x1, y1, x2, y2))
    return boxes


def deeppcb_mask(
    history: np.ndarray, current: np.ndarray, boxes: Sequence[tuple[int, int, int, int]]
) -> np.ndarray:
    """XOR of the two images binarised at 127, restricted to the union of the (inclusive) boxes."""
    def binary(img: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
        return grey > 127

    diff = binary(history) ^ binary(current)
    h, w = diff.shape
    inside = np.zeros_like(diff)
    for x1, y1, x2, y2 in boxes:
        x1, x2 = sorted((x1, x2))
        y1, y2 = sorted((y1, y2))
        x1, y1 = max(x1, 0), max(y1, 0)
        x2, y2 = min(x2, w - 1), min(y2, h - 1)
        if x1 <= x2 and y1 <= y2:
            inside[y1 : y2 + 1, x1 : x2 + 1] = True
    return diff & inside


register_source(
    "pairs",
    lambda arg, spec: PairFolderSource(arg, spec),
    "pairs:ROOT       one folder per pair under ROOT with hist.*, cur.* and optional cur_gt.png",
)
register_source(
    "ab",
    lambda arg, spec: ABSource(arg, spec, swap=False),
    "ab:ROOT          ROOT/A (history), ROOT/B (current), optional ROOT/label, matched by file stem",
)
register_source(
    "ba",
    lambda arg, spec: ABSource(arg, spec, swap=True),
    "ba:ROOT          as ab:ROOT with history = B and current = A",
)
register_source(
    "deeppcb",
    lambda arg, spec: DeepPCBSource(arg, spec),
    "deeppcb:LISTFILE DeepPCB list file (e.g. trainval.txt); masks = XOR of the binarised pair inside the boxes",
)


# ----------------------------------------------------------------------------------------------
# Train/validation split


def _unit_hash(key: str, seed: int) -> float:
    digest = hashlib.blake2b(f"{seed}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def split(source: Source, val_fraction: float = 0.2, seed: int = 0) -> tuple[Subset, Subset]:
    """Split a source into (train, val) views by hashing each pair's ``key`` with ``seed``.

    A pair lands on the same side whatever the order or size of the source it is in. When the hash
    would leave a side empty and there are at least two pairs, the pair nearest the cut moves over.
    """
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"the validation fraction must lie strictly between 0 and 1, got {val_fraction}.")
    u = [_unit_hash(source.key(i), seed) for i in range(len(source))]
    val = [i for i in range(len(u)) if u[i] < val_fraction]
    train = [i for i in range(len(u)) if u[i] >= val_fraction]
    if len(u) >= 2 and not val:
        moved = min(train, key=lambda i: u[i])
        train.remove(moved)
        val = [moved]
    elif len(u) >= 2 and not train:
        moved = max(val, key=lambda i: u[i])
        val.remove(moved)
        train = [moved]
    params = "" if (val_fraction, seed) == (0.2, 0) else f"(val_fraction={val_fraction!r},seed={seed})"
    return (
        Subset(source, train, f"{source.spec}@train{params}"),
        Subset(source, val, f"{source.spec}@val{params}"),
    )


# ----------------------------------------------------------------------------------------------
# Tensors for the model


class PairDataset(torch.utils.data.Dataset):
    """Model-ready tensors from a source: ``dict(history, current, mask, index)``.

    ``history`` and ``current`` are 3xSxS float in [-1, 1], ``mask`` is 1xSxS float in {0, 1}
    (zeros when the source has no mask). ``mode="resize"`` resizes the pair to SxS (mask nearest);
    ``mode="crop"`` takes a random SxS crop at native resolution (reflection padding for images and
    zero padding for the mask when smaller), placed to contain a random anomaly pixel half of the time
    when the mask is not empty, since a 0.3%-area defect rarely falls in a uniform crop. ``augment=True``
    applies one of identity / vflip / hflip / rot180 to all three alike, and with ``nuisance=True`` also
    the viewpoint, scale and photometric nuisance of ``anodfdnet/augment.py`` (crop mode).

    Random draws come from a numpy generator made per item from ``seed``, ``torch.initial_seed()``
    (which differs between DataLoader workers and between epochs' worker sets), the index and a
    per-process draw counter (which differs between epochs without workers). Seeding torch makes a
    run repeatable.
    """

    def __init__(self, source: Source, size: int = 256, mode: str = "resize", augment: bool = False, seed: int = 0,
                 nuisance: bool = False):
        if mode not in ("resize", "crop"):
            raise ValueError(f"mode must be 'resize' or 'crop', got {mode!r}")
        if int(size) <= 0:
            raise ValueError(f"size must be positive, got {size}")
        self.source, self.size, self.mode, self.augment, self.seed = source, int(size), mode, augment, int(seed)
        self.nuisance = bool(nuisance and augment)
        self._draws = 0

    def __len__(self) -> int:
        return len(self.source)

    def _rng(self, index: int) -> np.random.Generator:
        self._draws += 1
        return np.random.default_rng([self.seed % 2**63, torch.initial_seed() % 2**63, index, self._draws])

    def __getitem__(self, index: int) -> dict:
        pair = self.source[index]
        h, c = pair.history, pair.current
        m = pair.mask if pair.mask is not None else np.zeros(c.shape[:2], bool)
        s = self.size
        if self.mode == "resize":
            h, c, m = resize_rgb(h, (s, s)), resize_rgb(c, (s, s)), resize_mask(m, (s, s))
            rng = self._rng(index) if self.augment else None
        else:
            rng = self._rng(index)
            if self.nuisance:
                window = max(16, int(round(s * augment.window_scale(rng))))
                h, c, m = self._crop(h, c, m, rng, window)
                if rng.random() < 0.5:
                    h = augment.misregister(h, rng)
                if window != s:
                    h, c, m = resize_rgb(h, (s, s)), resize_rgb(c, (s, s)), resize_mask(m, (s, s))
                h, c = augment.photometric(h, rng), augment.photometric(c, rng)
            else:
                h, c, m = self._crop(h, c, m, rng)
        if self.augment:
            k = int(rng.integers(4))
            h, c, m = augment.flip(h, k), augment.flip(c, k), augment.flip(m, k)
        return dict(history=to_tensor(h), current=to_tensor(c), mask=mask_to_tensor(m), index=int(index))

    def _crop(self, h: np.ndarray, c: np.ndarray, m: np.ndarray, rng: np.random.Generator, s: int | None = None):
        s = self.size if s is None else s
        H, W = m.shape
        if H < s or W < s:
            py, px = max(s - H, 0), max(s - W, 0)
            pad = ((py // 2, py - py // 2), (px // 2, px - px // 2))
            h = np.pad(h, pad + ((0, 0),), mode="reflect" if min(H, W) > 1 else "edge")
            c = np.pad(c, pad + ((0, 0),), mode="reflect" if min(H, W) > 1 else "edge")
            m = np.pad(m, pad, mode="constant")
            H, W = m.shape
        if m.any() and rng.random() < 0.5:
            ys, xs = np.nonzero(m)
            j = int(rng.integers(len(ys)))
            y, x = int(ys[j]), int(xs[j])
            y0 = int(rng.integers(max(0, y - s + 1), min(y, H - s) + 1))
            x0 = int(rng.integers(max(0, x - s + 1), min(x, W - s) + 1))
        else:
            y0 = int(rng.integers(H - s + 1))
            x0 = int(rng.integers(W - s + 1))
        sl = (slice(y0, y0 + s), slice(x0, x0 + s))
        return h[sl], c[sl], m[sl]
