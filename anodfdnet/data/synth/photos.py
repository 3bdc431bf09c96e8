"""Photographs and textures from scikit-image's data folder (shipped in its wheel, read with no download):
backgrounds for the scene and debris for pasted foreign bodies.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
from PIL import Image

# surfaces and machinery for backgrounds; anything (animals, people, documents) for pasted debris
_BACKGROUND_PHOTOS = ("brick", "gravel", "grass", "moon", "coins", "motorcycle_left", "rocket", "text", "cell")
_PASTE_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "coins", "gravel", "grass", "page", "text", "rocket",
                 "motorcycle_left", "ihc", "logo", "retina", "hubble_deep_field", "brick", "moon")
_PHOTO_FILES = {
    "astronaut": "astronaut.png", "brick": "brick.png", "camera": "camera.png", "cell": "cell.png",
    "chelsea": "chelsea.png", "coffee": "coffee.png", "coins": "coins.png", "grass": "grass.png",
    "gravel": "gravel.png", "hubble_deep_field": "hubble_deep_field.jpg", "ihc": "ihc.png",
    "logo": "logo.png", "moon": "moon.png", "motorcycle_left": "motorcycle_left.png", "page": "page.png",
    "retina": "retina.jpg", "rocket": "rocket.jpg", "text": "text.png",
}


def _skimage_data_dir() -> Path | None:
    spec = importlib.util.find_spec("skimage")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data"


@functools.cache
def _photo(name: str) -> np.ndarray | None:
    """An RGB uint8 photograph from scikit-image's data folder, or None where it is not installed."""
    folder = _skimage_data_dir()
    if folder is None or not (folder / _PHOTO_FILES[name]).is_file():
        return None
    try:
        with Image.open(folder / _PHOTO_FILES[name]) as im:
            rgb = np.asarray(im.convert("RGB"))
    except OSError:
        return None
    rgb.setflags(write=False)
    return rgb


@functools.cache
def available_photos() -> tuple[str, ...]:
    """The photograph names that load from this installation (all of them with scikit-image)."""
    return tuple(n for n in _PHOTO_FILES if _photo(n) is not None)


def _photo_crop(rng: np.random.Generator, names: Iterable[str], h: int, w: int) -> np.ndarray | None:
    """A random crop of a random photo, flipped/rotated and resized to h x w (uint8), or None."""
    names = [n for n in names if n in available_photos()]
    if not names:
        return None
    img = _photo(names[int(rng.integers(len(names)))])
    k = int(rng.integers(4))
    if k % 2:
        h, w = w, h
    H, W = img.shape[:2]
    zoom = rng.uniform(0.5, 1.6)  # output pixels per photo pixel
    ch, cw = h / zoom, w / zoom
    s = min(1.0, H / ch, W / cw)  # zoom in further where the photo is too small
    ch, cw = max(4, int(ch * s)), max(4, int(cw * s))
    y, x = int(rng.integers(H - ch + 1)), int(rng.integers(W - cw + 1))
    crop = cv2.resize(img[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    if k:
        crop = cv2.rotate(crop, (cv2.ROTATE_90_COUNTERCLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_CLOCKWISE)[k - 1])
    if rng.random() < 0.5:
        crop = cv2.flip(crop, 1)
    return crop
