"""The training dataset: model-ready tensors from a source, with the paper's joint augmentation and,
optionally, the nuisance augmentation of ``augment.py``."""
from __future__ import annotations

import numpy as np
import torch

from .augment import flip, misregister, photometric, window_scale
from .images import mask_to_tensor, resize_mask, resize_rgb, to_tensor
from .source import Source


class PairDataset(torch.utils.data.Dataset):
    """Model-ready tensors from a source: ``dict(history, current, mask, index)``.

    ``history`` and ``current`` are 3xSxS float in [-1, 1], ``mask`` is 1xSxS float in {0, 1}
    (zeros when the source has no mask). ``mode="resize"`` resizes the pair to SxS (mask nearest);
    ``mode="crop"`` takes a random SxS crop at native resolution (reflection padding for images and
    zero padding for the mask when smaller), placed to contain a random anomaly pixel half of the time
    when the mask is not empty, since a 0.3%-area defect rarely falls in a uniform crop. ``augment=True``
    applies one of identity / vflip / hflip / rot180 to all three alike, and with ``nuisance=True`` (crop
    mode) also the viewpoint, scale and photometric nuisance of ``augment.py``, and with ``rot90=True`` (crop
    mode, square crops) the quarter turns as well: one of the eight symmetries of the square.

    Random draws come from a numpy generator made per item from ``seed``, ``torch.initial_seed()``
    (which differs between DataLoader workers and between epochs' worker sets), the index and a
    per-process draw counter (which differs between epochs without workers). Seeding torch makes a
    run repeatable.
    """

    def __init__(self, source: Source, size: int = 256, mode: str = "resize", augment: bool = False, seed: int = 0,
                 nuisance: bool = False, rot90: bool = False):
        if mode not in ("resize", "crop"):
            raise ValueError(f"mode must be 'resize' or 'crop', got {mode!r}")
        if int(size) <= 0:
            raise ValueError(f"size must be positive, got {size}")
        self.source, self.size, self.mode, self.augment, self.seed = source, int(size), mode, augment, int(seed)
        self.nuisance = bool(nuisance and augment)
        self.rot90 = bool(rot90 and augment and mode == "crop")
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
                window = max(16, int(round(s * window_scale(rng))))
                h, c, m = self._crop(h, c, m, rng, window)
                if rng.random() < 0.5:
                    h = misregister(h, rng)
                if window != s:
                    h, c, m = resize_rgb(h, (s, s)), resize_rgb(c, (s, s)), resize_mask(m, (s, s))
                h, c = photometric(h, rng), photometric(c, rng)
            else:
                h, c, m = self._crop(h, c, m, rng)
        if self.augment:
            k = int(rng.integers(4))
            h, c, m = flip(h, k), flip(c, k), flip(m, k)
            if self.rot90 and rng.random() < 0.5:
                h, c, m = (np.ascontiguousarray(np.rot90(a)) for a in (h, c, m))
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
