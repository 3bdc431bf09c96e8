"""What a label must be before the store writes it: images, mask, names, anomaly type, note. No Gradio here.

Each check returns the value as stored or raises :class:`~anodfdnet.errors.UserError` with one sentence
saying what is wrong, so a rejected save writes nothing (``annotate/store.py`` calls these first).
"""
from __future__ import annotations

import os
import re

import numpy as np
from PIL import Image

from anodfdnet.data.images import load_rgb
from anodfdnet.data.labels import ANOMALY_TYPES, NO_ANOMALY
from anodfdnet.errors import UserError

ANNOTATOR_RE = re.compile(r"[A-Za-z0-9 _.@-]{1,64}")
MAX_NOTE = 2000
MAX_TEXT = 500  # source, model_checkpoint
MAX_SIDE = 8192
MIN_SIDE = 8


def read_image(src, what: str) -> np.ndarray:
    if src is None:
        raise UserError(f"there is no {what} image: upload one (or take the next pair from the queue).")
    try:
        a = load_rgb(src)
    except TypeError:
        raise UserError(f"the {what} image is not an image (got {type(src).__name__}).") from None
    h, w = a.shape[:2]
    if min(h, w) < MIN_SIDE or max(h, w) > MAX_SIDE:
        raise UserError(f"the {what} image is {w}x{h}; sides must lie between {MIN_SIDE} and {MAX_SIDE} pixels.")
    return a

def read_mask(mask, shape) -> np.ndarray:
    if mask is None:
        raise UserError("there is no mask: paint the anomaly, or choose 'no anomaly' with an empty mask.")
    if isinstance(mask, (str, os.PathLike, Image.Image)):
        try:
            im = Image.open(mask) if not isinstance(mask, Image.Image) else mask
            mask = np.array(im.convert("L") if im.mode not in ("1", "L") else im)
        except (OSError, ValueError) as e:
            raise UserError(f"the mask cannot be read ({e}).") from None
    m = np.asarray(mask)
    if m.ndim != 2:
        raise UserError(f"the mask must be one channel (H x W), got shape {tuple(m.shape)}.")
    if m.shape != tuple(shape):
        raise UserError(f"the mask is {m.shape[1]}x{m.shape[0]} but the current image is {shape[1]}x{shape[0]}; they must match.")
    if m.dtype != bool:
        values = np.unique(m)
        if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
            raise UserError("the mask is not binary: its values must be 0/1 or 0/255 (or bool).")
        m = m != 0
    return m

def check_annotator(name, what: str = "annotator") -> str:
    """The name as stored (stripped); a UserError saying what is wrong otherwise."""
    name = (name or "").strip() if isinstance(name, str) or name is None else None
    if name is None:
        raise UserError(f"the {what} name must be text.")
    if not ANNOTATOR_RE.fullmatch(name):
        if not name:
            raise UserError(f"give your name as the {what} (1 to 64 letters, digits, spaces or _ . @ -).")
        if len(name) > 64:
            raise UserError(f"the {what} name is {len(name)} characters long; use at most 64.")
        bad = sorted({ch for ch in name if not ANNOTATOR_RE.fullmatch(ch)})
        raise UserError(f"the {what} name may hold only letters, digits, spaces and _ . @ - (not {' '.join(repr(c) for c in bad)}).")
    return name


def check_answer(anomaly_type, painted: bool) -> None:
    if anomaly_type not in ANOMALY_TYPES:
        raise UserError(f"'{str(anomaly_type)[:60]}' is not an anomaly type; choose one of: {', '.join(ANOMALY_TYPES)}.")
    if anomaly_type == NO_ANOMALY and painted:
        raise UserError(f"the type is '{NO_ANOMALY}' but the mask is not empty: clear the mask or choose the anomaly's type.")
    if anomaly_type != NO_ANOMALY and not painted:
        raise UserError(f"the mask is empty: paint the {anomaly_type}, or choose '{NO_ANOMALY}'.")


def check_note(note) -> str:
    note = "" if note is None else str(note)
    if len(note) > MAX_NOTE:
        raise UserError(f"the note is {len(note)} characters long; keep it under {MAX_NOTE}.")
    return note
