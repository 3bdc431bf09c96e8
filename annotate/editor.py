"""``ImageEditor``: Gradio's paint editor with its canvas upload route bounded and the value it shows made
unambiguous (Gradio; the Label and Review tabs).

**What the page draws (Gradio 6.31's frontend, read in its bundled ``Index-*.js``).** Two rules of the
editor's page code made a mask set by the server ("Start from the model", the Review tab's consensus) show
twice, once outside the image, or not at all:

* the page loads ``composite || background`` as the picture to paint on. A composite holds the layers
  already drawn over the background, so sending one with the layers showed every layer twice, the
  baked-in copy could not be erased, and once the person painted, the canvas's background (what Save
  reads as the current image) held the baked-in paint. :meth:`ImageEditor.postprocess` therefore never
  sends a composite beside a background.
* a layer that arrives with a value is created at the size of everything in the canvas
  (``image_container.getLocalBounds()``), and at start-up the page leaves an empty layer of the initial
  ``canvas_size`` (default 800x800) in the canvas that no later image removes. For an image smaller than
  that, the model's layer was made 800 px wide and the mask drawn centred in it: offset by
  ``(800 - width) / 2`` image pixels (144 px, ~118 screen px at 82 %, for a 512 px tunnel pair; entirely
  outside a 96 px image), and the person then erased and saved a shifted copy. The tabs' editors start
  with a canvas of :data:`CANVAS_SIDE` pixels, no larger than any image they accept, so a layer is always
  the image's size (unless a caller chooses a ``canvas_size``).

Before an event that takes the editor's value, the page uploads the canvas (background, composite, one
blob per paint layer) to ``POST /gradio_api/component_server`` with ``fn_name=accept_blobs``, the
editor's component id and form fields ``type``, ``index`` and ``id``; the event then names only the
``id``. Gradio 6.31's ``ImageEditor.accept_blobs`` trusts those fields: for ``type=layer`` it grows the
stored layer list to ``index + 1`` entries (``layers.extend([None] * (index + 1 - len(layers)))``), so
one request with ``index=100000000`` and an 8x8 PNG allocates a Python list of 10^8 pointers (~800 MB),
and it keeps every ``id`` it was sent until an event reads it, so ids that no event reads pile up for
the life of the process. Any visitor can send these requests (the route takes any session hash).

This subclass keeps the route, which the page needs, and bounds what it stores:

* ``type`` is ``background``, ``composite`` or ``layer``, and a layer's ``index`` is a whole number below
  :data:`MAX_LAYERS` (the tabs' editors have one layer); anything else is refused with HTTP 400 before
  anything is stored. The composite is not kept (the tabs read the background and the layers).
* a blob is at most the app's upload limit (Gradio already refuses a larger multipart file) and there is
  exactly one per request;
* pending canvases (ids no event has read yet) are bounded per session (:data:`MAX_PENDING_PER_SESSION`)
  and in all (:data:`MAX_PENDING`, :data:`MAX_PENDING_BYTES`), and dropped after :data:`PENDING_TTL_S`;
  the oldest goes first. A flood from many sessions can therefore push out a real visitor's canvas
  (their Save then says the painting did not reach the server and asks to paint again), but it cannot
  grow the server's memory beyond these bounds.

The storage stays Gradio's ``blob_storage`` dict of ``EditorDataBlobs`` (what ``tab.read_editor_value``
and Gradio's own ``preprocess`` read), so nothing else changes. (Gradio writes a type stub, ``editor.pyi``,
beside any module that subclasses one of its components; it is ignored by git.)
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict

import gradio as gr
from fastapi import HTTPException
from gradio.components.base import server
from gradio.components.image_editor import AcceptBlobs, EditorDataBlobs

from .checks import MIN_SIDE

MAX_LAYERS = 4  # layer indices 0..3 (the tabs' editors have layers=False: one layer)
MAX_PENDING_PER_SESSION = 4  # canvases uploaded by one session and not yet read by an event
MAX_PENDING = 64  # canvases pending in all
MAX_PENDING_BYTES = 256_000_000  # bytes pending in all
PENDING_TTL_S = 900.0
MAX_ID_CHARS = 64
CANVAS_SIDE = MIN_SIDE  # the initial canvas: no larger than the smallest image the tabs accept
GRADIO_CANVAS = (800, 800)  # gr.ImageEditor's default canvas_size
KINDS = ("background", "composite", "layer")

__all__ = ["CANVAS_SIDE", "ImageEditor", "MAX_LAYERS", "MAX_PENDING", "MAX_PENDING_BYTES", "MAX_PENDING_PER_SESSION"]


def _refuse(why: str) -> HTTPException:
    return HTTPException(status_code=400, detail=f"Canvas upload refused: {why}")


class _Pending:
    """Which canvases are pending in which editor's ``blob_storage``, oldest first, with their sizes and
    sessions; evicts past the bounds. One for the process (the bounds are the process's)."""

    def __init__(self):
        self.lock = threading.Lock()
        # (id(storage), blob id) -> [storage, blob id, session key, bytes, time first seen]
        self.entries: OrderedDict[tuple[int, str], list] = OrderedDict()

    def _drop(self, key) -> None:
        storage, blob_id, *_ = self.entries.pop(key)
        storage.pop(blob_id, None)

    def add(self, storage: dict, blob_id: str, session: int, nbytes: int) -> None:
        """Account ``nbytes`` more for ``blob_id`` in ``storage`` (caller holds ``lock``), then evict."""
        now = time.monotonic()
        for key, (st, bid, *_rest) in list(self.entries.items()):  # read by an event since: forget it
            if bid not in st:
                del self.entries[key]
        key = (id(storage), blob_id)
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = [storage, blob_id, session, 0, now]
        entry[3] += nbytes
        for key, (_, _, _, _, t) in list(self.entries.items()):
            if now - t > PENDING_TTL_S:
                self._drop(key)
        mine = [k for k, e in self.entries.items() if e[2] == session]
        for k in mine[:max(0, len(mine) - MAX_PENDING_PER_SESSION)]:
            self._drop(k)
        while self.entries and (len(self.entries) > MAX_PENDING
                                or sum(e[3] for e in self.entries.values()) > MAX_PENDING_BYTES):
            self._drop(next(iter(self.entries)))

    def count(self) -> tuple[int, int]:
        """(canvases pending, bytes pending)."""
        with self.lock:
            live = [e for e in self.entries.values() if e[1] in e[0]]
            return len(live), sum(e[3] for e in live)


PENDING = _Pending()


def _session_key() -> int:
    """The visitor's session as Gradio's component route sets it (its per-session config), else 0."""
    from gradio.context import LocalContext

    config = LocalContext.blocks_config.get(None)
    return id(config) if config is not None else 0


class ImageEditor(gr.ImageEditor):
    """``gr.ImageEditor`` whose ``accept_blobs`` route is bounded, whose canvas starts at
    :data:`CANVAS_SIDE` pixels and whose values never send a composite beside a background (see the module
    docstring)."""

    # (No __init__ here: Gradio builds a component's page config from its own __init__'s parameters.)
    def get_config(self, *args, **kwargs):
        config = super().get_config(*args, **kwargs)
        if tuple(config.get("canvas_size") or ()) == GRADIO_CANVAS:  # not chosen by the caller
            config["canvas_size"] = [CANVAS_SIDE, CANVAS_SIDE]
        return config

    def postprocess(self, value):
        data = super().postprocess(value)
        if data is not None and data.background is not None:
            data.composite = None  # the page would paint on the composite: every layer twice
        return data

    @server
    def accept_blobs(self, data: AcceptBlobs):
        fields, files = getattr(data, "data", None), getattr(data, "files", None)
        if not isinstance(fields, dict) or not isinstance(files, list):
            raise _refuse("send the canvas as a multipart form.")
        kind = fields.get("type")
        if kind not in KINDS:
            raise _refuse(f"type must be one of {', '.join(KINDS)}.")
        blob_id = fields.get("id")
        if not isinstance(blob_id, str) or not 0 < len(blob_id) <= MAX_ID_CHARS:
            raise _refuse(f"id must be text of 1 to {MAX_ID_CHARS} characters.")
        index = None
        if kind == "layer":
            raw = fields.get("index")
            try:
                index = int(str(raw)) if raw not in (None, "", "null") else 0
            except ValueError:
                raise _refuse("index must be a whole number.") from None
            if not 0 <= index < MAX_LAYERS:
                raise _refuse(f"index must lie between 0 and {MAX_LAYERS - 1}.")
        if len(files) != 1 or not isinstance(files[0][1], bytes):
            raise _refuse("send exactly one file.")
        blob = files[0][1]
        if kind == "composite":
            return None  # the tabs read the background and the layers; a composite is not kept
        with PENDING.lock:
            current = self.blob_storage.get(blob_id) or EditorDataBlobs(background=None, layers=[], composite=None)
            if index is not None:
                if index >= len(current.layers):
                    current.layers.extend([None] * (index + 1 - len(current.layers)))
                current.layers[index] = blob
            else:
                current.background = blob
            self.blob_storage[blob_id] = current
            PENDING.add(self.blob_storage, blob_id, _session_key(), len(blob))
        return None
