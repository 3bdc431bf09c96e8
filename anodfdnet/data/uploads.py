"""Images that arrive from outside (a web upload, an API call), read without trusting the request.

A web front end hands the server an image in one of three forms, and this module reads exactly those:

* **bytes** held in memory (e.g. the canvas blobs of a paint editor), or a ``data:`` URL (a string, or
  a payload dict ``{"url": "data:..."}``): the length is checked *before* anything is decoded, the
  bytes are decoded in memory and never written to disk;
* **a file the front end placed in its upload folder for this request**: a payload dict
  ``{"path": P, "meta": {"_type": "gradio.FileData"}, ...}`` (the shape Gradio gives a file it has
  checked and moved into its cache), where ``P``, with every symlink resolved, is a regular file
  inside ``upload_root``.

Everything else (a bare path string, a dict without that ``meta``, a relative path, a path outside
the upload folder or reaching out of it through ``..`` or a symlink, a folder) is refused with
:class:`UploadRefused` and one neutral sentence per role that is the same whatever exists on disk,
so an error never tells a visitor whether some file exists.

An accepted image is then checked before it is decoded: its format from the header (exactly
:data:`FORMATS`: only those plugins of Pillow look at the bytes; anything else is refused with the
sentence that lists them), the file size against ``max_bytes``, the
width and height *from the header* against ``max_pixels`` (and ``min_side`` / ``max_side``), so a
9000 x 9000 image is refused in milliseconds instead of being decoded first. Messages are one
sentence naming the role and the file's original name (which is the visitor's text: a page that
shows it must escape it). This module knows nothing of any web framework beyond that payload shape.
"""
from __future__ import annotations

import base64
import binascii
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UserError
from .images import _oriented, _pil_to_array, load_rgb  # the package's one reading of PIL modes

FILE_META = {"_type": "gradio.FileData"}
FORMATS = "PNG, JPEG, BMP, TIFF or WebP"
# Exactly the formats FORMATS names, as Pillow's plugins call them: Image.open tries only these, so no other
# of Pillow's decoders (TGA, ICO, PCX, SGI, PPM, GIF, XBM, IM, DDS...) ever parses a stranger's bytes.
PIL_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP")


class UploadRefused(UserError):
    """A payload that is not an upload of this request (see the module docstring); its message is neutral."""


@dataclass(frozen=True)
class Limits:
    """What an uploaded image may be: file size, pixels and side lengths, all checked before decoding."""

    max_bytes: int = 25_000_000
    max_pixels: int = 40_000_000
    min_side: int = 1
    max_side: int | None = None

    @classmethod
    def from_env(cls, **overrides) -> Limits:
        """ANODFDNET_MAX_FILE_MB (default 25) and ANODFDNET_MAX_PIXELS (default 40e6), as the app documents."""
        mb = float(os.environ.get("ANODFDNET_MAX_FILE_MB", 25))
        px = int(float(os.environ.get("ANODFDNET_MAX_PIXELS", 40e6)))
        return cls(**{"max_bytes": int(mb * 1e6), "max_pixels": px, **overrides})

    @property
    def max_mb(self) -> float:
        return self.max_bytes / 1e6


def refused(role: str) -> UploadRefused:
    """The one message for every payload that is not an upload of this request."""
    return UploadRefused(
        f"the {role} image did not arrive as an upload: upload the file again "
        "(through the API, pass it with gradio_client.handle_file)."
    )


def is_file_payload(payload) -> bool:
    """True for a dict in the shape of a file the front end checked and moved into its cache."""
    return isinstance(payload, dict) and payload.get("meta") == FILE_META and isinstance(payload.get("path"), str)


def confined_file(path: str, upload_root: str | os.PathLike) -> Path | None:
    """The real location of ``path`` if it is an absolute path naming a regular file inside
    ``upload_root`` once every symlink is resolved; None otherwise (never raises)."""
    try:
        if not path or "\0" in path or not os.path.isabs(path):
            return None
        root = os.path.realpath(upload_root)
        real = os.path.realpath(path)
        if os.path.commonpath([root, real]) != root or real == root:
            return None
        if not stat.S_ISREG(os.stat(real).st_mode):
            return None
        return Path(real)
    except (OSError, ValueError):
        return None


def _data_url_bytes(url: str, role: str, name: str, limits: Limits) -> bytes:
    """Decode a data: URL in memory, refusing it from its length before decoding when it is too big."""
    head, sep, data = url.partition(",")
    if not sep:
        raise UserError(f"the {role} image could not be decoded from the browser's data.")
    if ";base64" in head:
        # Every 4 characters of base64 are 3 bytes: the decoded size is known before decoding.
        if len(data) > 4 * (-(-limits.max_bytes // 3)) + 4:
            raise UserError(_too_big(role, name, len(data) * 3 / 4, limits))
        try:
            raw = base64.b64decode(data, validate=True)
        except (ValueError, binascii.Error):
            raise UserError(f"the {role} image could not be decoded from the browser's data.") from None
    else:
        if len(data) > 3 * limits.max_bytes:  # percent-encoding takes at most 3 characters a byte
            raise UserError(_too_big(role, name, len(data) / 3, limits))
        from urllib.parse import unquote_to_bytes

        raw = unquote_to_bytes(data)
    if len(raw) > limits.max_bytes:
        raise UserError(_too_big(role, name, len(raw), limits))
    return raw


def _too_big(role: str, name: str, size: float, limits: Limits) -> str:
    return f"the {role} image{_named(name)} is {size / 1e6:.1f} MB; files up to {limits.max_mb:g} MB are accepted."


def _named(name: str) -> str:
    return f" '{name}'" if name else ""


def display_name(payload) -> str:
    """The visitor's own name for the file (``orig_name``), else the file name; '' when there is none.
    Never a server path. The text is the visitor's: escape it before putting it in a page."""
    if isinstance(payload, dict):
        orig = payload.get("orig_name")
        if isinstance(orig, str) and orig:
            return os.path.basename(orig)[:200]
        if is_file_payload(payload):
            return os.path.basename(payload["path"])[:200]
    return ""


def payload_source(payload, role: str, upload_root: str | os.PathLike, limits: Limits) -> bytes | Path:
    """What to read for an upload payload: its bytes (in memory) or its confined file. Refuses anything else."""
    name = display_name(payload)
    if isinstance(payload, (bytes, bytearray, memoryview)):
        raw = bytes(payload)
        if len(raw) > limits.max_bytes:
            raise UserError(_too_big(role, name, len(raw), limits))
        return raw
    if isinstance(payload, str):
        if payload.startswith("data:"):
            return _data_url_bytes(payload, role, name, limits)
        raise refused(role)
    if not isinstance(payload, dict):
        raise refused(role)
    url = payload.get("url")
    if not payload.get("path") and isinstance(url, str) and url.startswith("data:"):
        return _data_url_bytes(url, role, name, limits)
    if not is_file_payload(payload):
        raise refused(role)
    real = confined_file(payload["path"], upload_root)
    if real is None:
        raise refused(role)
    size = real.stat().st_size
    if size > limits.max_bytes:
        raise UserError(_too_big(role, name, size, limits))
    return real


def decode_checked(source: bytes | Path, role: str, name: str, limits: Limits) -> np.ndarray:
    """Open an image, check its size from the header, then decode it fully (EXIF orientation applied)
    into an array as stored (HxW, HxWx2, HxWx3 or HxWx4; 8 or 16 bits; see ``images._pil_to_array``)."""
    label = f"the {role} image{_named(name)}"
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        im = Image.open(stream, formats=PIL_FORMATS)  # reads the header only, with these formats' plugins only
    except Image.DecompressionBombError:
        raise UserError(f"{label} is too large; images up to {limits.max_pixels / 1e6:g} megapixels are accepted.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise UserError(f"{label} is not an image file that can be read ({FORMATS}).") from None
    try:
        w, h = im.size
        if w * h > limits.max_pixels or (limits.max_side and max(w, h) > limits.max_side):
            side = f", sides up to {limits.max_side} pixels" if limits.max_side else ""
            raise UserError(
                f"{label} is too large ({w}x{h} = {w * h / 1e6:.0f} MP); images up to "
                f"{limits.max_pixels / 1e6:g} megapixels{side} are accepted."
            )
        if min(w, h) < limits.min_side:
            raise UserError(f"{label} is {w}x{h}; sides must be at least {limits.min_side} pixels.")
        try:
            im.load()
        except Image.DecompressionBombError:
            raise UserError(f"{label} is too large; images up to {limits.max_pixels / 1e6:g} megapixels are accepted.") from None
        except (OSError, ValueError, SyntaxError, EOFError) as e:
            reason = str(e).split(":")[0].strip().rstrip(".") if not isinstance(e, FileNotFoundError) else ""
            reason = reason if reason and "/" not in reason else "the file is damaged or cut short"
            raise UserError(f"{label} could not be read: {reason}.") from None
        return _pil_to_array(_oriented(im), label)
    finally:
        im.close()


def read_upload(payload, role: str, upload_root: str | os.PathLike, limits: Limits) -> np.ndarray:
    """An uploaded image as uint8 HxWx3 RGB, or a UserError (UploadRefused for a crafted payload)."""
    source = payload_source(payload, role, upload_root, limits)
    return load_rgb(decode_checked(source, role, display_name(payload), limits))


def read_upload_array(payload, role: str, upload_root: str | os.PathLike, limits: Limits) -> np.ndarray:
    """Like :func:`read_upload`, but the pixels as stored: HxW, HxWx2, HxWx3 or HxWx4 (alpha kept),
    8 or 16 bits. For paint layers and masks, whose transparency carries meaning."""
    source = payload_source(payload, role, upload_root, limits)
    return decode_checked(source, role, display_name(payload), limits)
