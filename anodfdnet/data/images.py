"""Reading, converting and resizing images and masks, whatever form they arrive in.

Everything else in the project works on two in-memory forms (see DESIGN.md):

* an image is a ``uint8`` array of shape ``HxWx3``, RGB;
* a mask is a ``bool`` array of shape ``HxW``; on disk it is an 8-bit PNG holding {0, 255}.

``load_rgb`` and ``load_mask`` accept a path, a ``PIL.Image`` or a numpy array and turn any common
mode (greyscale, palette, RGBA, LA, 16-bit, CMYK, float) into those forms, applying the EXIF
orientation so that a phone photo comes out the way it is displayed. A file that is missing or cannot
be decoded raises :class:`~anodfdnet.errors.UserError` with one sentence naming it.

The mask rule (one rule, applied to every input form):

1. Channels. With an alpha channel that varies across the image (a painted layer exported with a
   transparent background), the alpha channel is the mask. Otherwise (no alpha, or alpha constant)
   the mask value is the maximum over the colour channels.
2. Threshold. Boolean input is taken as it is. Integer input whose values are all 0 or 1 (a
   label-index PNG) is True where nonzero. Otherwise 8-bit input is True above 127, and 16-bit,
   32-bit and float input is True above half its full range (32767 for 16-bit, 0.5 for float).

The tensor helpers give the model's input convention: images ``3xHxW`` float in [-1, 1], masks
``1xHxW`` float in {0, 1}. ``save_mask_png`` / ``save_rgb_png`` write PNGs atomically.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Union

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import UserError

ImageSource = Union[str, os.PathLike, Image.Image, np.ndarray]

# Extensions the folder-based data sources treat as images.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# PIL integer modes wider than 8 bits. 16-bit greyscale PNGs open as "I;16*" (or "I" in older
# Pillow), so "I" is read against the 16-bit range too.
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


# ----------------------------------------------------------------------------------------------
# Loading


def load_rgb(src: ImageSource) -> np.ndarray:
    """Return ``src`` as a ``uint8`` HxWx3 RGB array.

    ``src`` is a path, a ``PIL.Image`` or an array (HxW, HxWx1, HxWx2, HxWx3 or HxWx4; uint8,
    uint16, bool, or float in [0, 1]). Alpha is dropped, 16-bit samples are scaled to 8 bits and the
    EXIF orientation is applied. A missing or undecodable file raises ``UserError`` naming it.
    """
    if isinstance(src, np.ndarray):
        return _array_to_rgb(src)
    if isinstance(src, Image.Image):
        return _array_to_rgb(_pil_to_array(_oriented(src), "the image"))
    if isinstance(src, (str, os.PathLike)):
        return _array_to_rgb(_pil_to_array(_open(src), f"image '{src}'"))
    raise TypeError(f"load_rgb expects a path, a PIL image or a numpy array, got {type(src).__name__}")


def load_mask(src: ImageSource) -> np.ndarray:
    """Return ``src`` as a ``bool`` HxW mask, following the module's mask rule.

    Accepts the same inputs as :func:`load_rgb` and raises the same errors.
    """
    if isinstance(src, np.ndarray):
        return _array_to_mask(src)
    if isinstance(src, Image.Image):
        return _array_to_mask(_pil_to_array(_oriented(src), "the mask"))
    if isinstance(src, (str, os.PathLike)):
        return _array_to_mask(_pil_to_array(_open(src), f"mask '{src}'"))
    raise TypeError(f"load_mask expects a path, a PIL image or a numpy array, got {type(src).__name__}")


def _open(path: str | os.PathLike) -> Image.Image:
    """Open, fully decode and orient an image file; any failure is a ``UserError`` naming it."""
    try:
        with Image.open(path) as im:
            im.load()
            return _oriented(im)
    except FileNotFoundError:
        raise UserError(f"cannot read image '{path}': the file does not exist.") from None
    except IsADirectoryError:
        raise UserError(f"cannot read image '{path}': it is a folder, not an image file.") from None
    except UnidentifiedImageError:
        raise UserError(f"cannot read image '{path}': it is not an image file Pillow recognises.") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        # Truncated or corrupt data, permission errors, unsupported encodings.
        reason = str(e).rstrip(".") or type(e).__name__
        raise UserError(f"cannot read image '{path}': {reason}.") from None


def _oriented(im: Image.Image) -> Image.Image:
    """The image as displayed (EXIF orientation applied); as stored when its EXIF is unreadable."""
    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # malformed EXIF must not make a readable image unreadable
        return im


def _pil_to_array(im: Image.Image, what: str) -> np.ndarray:
    """Convert a PIL image to a numpy array in one of the forms ``_array_to_*`` accept."""
    mode = im.mode
    try:
        if mode == "1":
            return np.array(im, dtype=bool)
        if mode in ("L", "RGB", "RGBA", "LA"):
            return np.array(im)
        if mode == "F":
            return np.array(im, dtype=np.float32)
        if mode in _WIDE_MODES:  # integer samples read against the 16-bit range
            return np.clip(np.array(im).astype(np.int64), 0, 65535).astype(np.uint16)
        if mode in ("P", "PA", "RGBa", "La"):  # palette (maybe with transparency), premultiplied alpha
            return np.array(im.convert("RGBA"))
        return np.array(im.convert("RGB"))  # CMYK, YCbCr, HSV, RGBX, ...
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {what}: its mode {mode} cannot be converted ({e}).") from None


def _as_channels(a: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Split an HxW / HxWxC array into (colour HxWxC', alpha HxW or None)."""
    if a.ndim == 2:
        return a[..., None], None
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise UserError(
            f"an image array must be HxW or HxWxC with C in 1..4, got shape {tuple(a.shape)}."
        )
    c = a.shape[2]
    if c in (2, 4):
        return a[..., : c - 1], a[..., c - 1]
    return a, None


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """Scale samples of any supported dtype to uint8 (0..255)."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        if a.size == 0 or (a.min() >= 0 and a.max() <= 255):
            return a.astype(np.uint8)
        if a.min() >= 0 and a.max() <= 65535:
            return _to_uint8(a.astype(np.uint16))
        raise UserError(f"image values of dtype {a.dtype} must lie in 0..65535, got {a.min()}..{a.max()}.")
    raise UserError(f"image arrays of dtype {a.dtype} are not supported (use uint8, uint16, bool or float).")


def _array_to_rgb(a: np.ndarray) -> np.ndarray:
    colour, _alpha = _as_channels(np.asarray(a))
    colour = _to_uint8(colour)
    if colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    return np.array(colour, order="C")  # always a copy: never alias the caller's array


def _full_scale(a: np.ndarray) -> float:
    if a.dtype == np.uint8:
        return 255.0
    if np.issubdtype(a.dtype, np.floating):
        return 1.0
    if a.dtype == np.uint16:
        return 65535.0
    return 255.0 if a.size == 0 or a.max() <= 255 else 65535.0


def _array_to_mask(a: np.ndarray) -> np.ndarray:
    colour, alpha = _as_channels(np.asarray(a))
    if alpha is not None and alpha.size and alpha.min() != alpha.max():
        values = alpha
    else:
        values = colour.max(axis=2)
    if values.dtype == bool:
        return values.copy()
    if np.issubdtype(values.dtype, np.integer):
        if values.size == 0 or (values.min() >= 0 and values.max() <= 1):
            return values != 0
        if values.dtype == np.uint8:
            return values > 127
        return values > _full_scale(values) / 2
    values = np.nan_to_num(values.astype(np.float32), nan=0.0)
    return values > 0.5


# ----------------------------------------------------------------------------------------------
# Resizing and tensors


def resize_rgb(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an HxWx3 image to ``size = (h, w)``: area averaging when shrinking, bilinear otherwise."""
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"resize target must be positive, got {size}")
    H, W = img.shape[:2]
    if (H, W) == (h, w):
        return img.copy()
    interp = cv2.INTER_AREA if (h <= H and w <= W) else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(img), (w, h), interpolation=interp)
    return out.reshape(h, w, *img.shape[2:])


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a bool HxW mask to ``size = (h, w)`` with nearest-neighbour sampling."""
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"resize target must be positive, got {size}")
    if mask.shape[:2] == (h, w):
        return mask.astype(bool, copy=True)
    out = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
    return out.astype(bool)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 image -> float32 tensor 3xHxW in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()
    return t.div_(127.5).sub_(1.0)


def mask_to_tensor(mask: np.ndarray) -> torch.Tensor:
    """bool HxW mask -> float32 tensor 1xHxW in {0, 1}."""
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=bool).astype(np.float32))[None]


def save_mask_png(path: str | os.PathLike, mask: np.ndarray, text: dict | None = None, compress_level: int = 6) -> None:
    """Write a bool HxW mask as an 8-bit greyscale PNG holding {0, 255}.

    The file is written under a temporary name and moved into place, so an existing file is never
    left half-written. An unwritable destination raises ``UserError`` naming it. ``text``: PNG text chunks
    (key -> string), e.g. how the pair was aligned. ``compress_level``: zlib's 0 to 9 (6, PIL's default; batch
    outputs use ``predict.BATCH_PNG_LEVEL``, 1: half the CPU time for files a kB or two larger).
    """
    data = np.asarray(mask).astype(bool).astype(np.uint8) * 255
    if data.ndim != 2:
        raise ValueError(f"a mask must be HxW, got shape {data.shape}")
    _write_png(Path(path), Image.fromarray(data), "mask", text, compress_level)


def save_rgb_png(path: str | os.PathLike, img: np.ndarray, text: dict | None = None, compress_level: int = 6) -> None:
    """Write an image (anything :func:`load_rgb` accepts as an array) as an 8-bit RGB PNG, atomically."""
    _write_png(Path(path), Image.fromarray(_array_to_rgb(np.asarray(img))), "image", text, compress_level)


def save_indexed_png(path: str | os.PathLike, index: np.ndarray, palette: np.ndarray, text: dict | None = None,
                     compress_level: int = 6) -> None:
    """Write uint8 HxW palette indices with a 256x3 uint8 RGB palette as an 8-bit palette PNG, atomically (it
    shows as ``palette[index]``; read it back with ``Image.open(path).convert("RGB")``)."""
    index, palette = np.asarray(index), np.asarray(palette)
    if index.ndim != 2 or index.dtype != np.uint8 or palette.shape != (256, 3) or palette.dtype != np.uint8:
        raise ValueError(f"an indexed image needs uint8 HxW indices and a 256x3 uint8 palette, got {index.shape} "
                         f"{index.dtype} and {palette.shape} {palette.dtype}")
    img = Image.frombuffer("P", (index.shape[1], index.shape[0]), np.ascontiguousarray(index).tobytes(), "raw", "P", 0, 1)
    img.putpalette(palette.tobytes())
    _write_png(Path(path), img, "image", text, compress_level)


def _write_png(path: Path, image: Image.Image, what: str, text: dict | None = None, compress_level: int = 6) -> None:
    info = None
    if text:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for key, value in text.items():
            info.add_text(str(key), str(value))
    tmp = None
    try:
        # A fresh name beside the target (same file system, so os.replace is atomic); opened with
        # "xb" so the file gets the usual permissions, unlike tempfile's owner-only ones.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "xb") as f:
            image.save(f, format="PNG", pnginfo=info, compress_level=compress_level)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise UserError(f"cannot write {what} '{path}': {e.strerror or e}.") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
