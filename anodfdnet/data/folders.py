"""The folder layouts of pairs on disk: ``pairs:ROOT`` and ``ab:ROOT`` / ``ba:ROOT``.

* ``pairs:ROOT``  one folder per pair under ROOT (the paper code's layout) holding ``hist.*``,
  ``cur.*`` and, optionally, ``cur_gt.png``; sorted by folder name.
* ``ab:ROOT``     ``ROOT/A/NAME.*`` (history), ``ROOT/B/NAME.*`` (current) and optionally
  ``ROOT/label/NAME.*`` (mask), matched by file stem.  ``ba:ROOT`` is the same with A and B swapped
  (history = B, current = A), e.g. ``ba:../shared/data/tunnel_synthetic``.
"""
from __future__ import annotations

import glob
from pathlib import Path

from ..errors import UserError
from .images import IMAGE_EXTENSIONS
from .source import Pair, PairFiles, Source
from .spec import register_source


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _existing_dir(path: str, spec: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"data spec '{spec}': the folder '{p}' does not exist.")
    if not p.is_dir():
        raise UserError(f"data spec '{spec}': '{p}' is not a folder.")
    return p.absolute()  # the pairs' files stay the same files if the process changes folder


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
        return self.detached(i).load()

    def detached(self, i: int) -> PairFiles:
        hist, cur, gt = self.files[self._index(i)]
        return PairFiles(self.names[self._index(i)], str(hist), str(cur), str(gt) if gt is not None else None)


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
        return self.detached(i).load()

    def detached(self, i: int) -> PairFiles:
        n = self.names[self._index(i)]
        hist, cur = (self._b[n], self._a[n]) if self.swap else (self._a[n], self._b[n])
        label = self.labels[n] if self.labels is not None else None
        return PairFiles(n, str(hist), str(cur), str(label) if label is not None else None)


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
