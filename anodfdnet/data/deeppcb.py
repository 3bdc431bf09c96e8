"""``deeppcb:LISTFILE``: the DeepPCB pairs, with pixel masks derived from their defect boxes."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..errors import UserError
from .source import Pair, Source, load_pair
from .spec import register_source


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
    "deeppcb",
    lambda arg, spec: DeepPCBSource(arg, spec),
    "deeppcb:LISTFILE DeepPCB list file (e.g. trainval.txt); masks = XOR of the binarised pair inside the boxes",
)
