"""The label dataset: its one schema, and the ``hf:DIR_OR_REPO`` data source that reads it for training.

The app's brush tab (``annotate/``) writes labels with :data:`FEATURES`; the training code reads them
back with ``parse_spec("hf:labels")`` (a local folder) or ``parse_spec("hf:OWNER/NAME")`` (a Hugging
Face Hub dataset). The columns are built in ``label_schema.py`` (so that ``label_files.py``, which checks
shards, needs nothing from this module) and described here; nothing else defines them.

One row is one saved answer about one pair:

================  =========  ===============================================================
column            type       meaning
================  =========  ===============================================================
id                string     the row's unique id (32 hex digits, a UUID4)
history           Image      the earlier, known-good image, PNG (lossless); readers resize it to the current's size
current           Image      the later image, PNG; the mask is in its coordinates
mask              Image      8-bit greyscale PNG {0, 255}, the current image's size
annotator         string     who answered: a typed name, a Hugging Face account, or ``anonymous-<8 hex>``
                             (``[A-Za-z0-9 _.@-]{1,64}``)
anomaly_type      string     one of :data:`ANOMALY_TYPES`; ``"no anomaly"`` iff the mask is empty
note              string     free text (may be empty)
created_at        string     ISO 8601 UTC, e.g. ``2025-01-31T12:00:00.123456Z``
source            string     where the pair came from (``upload``, or the queue SPEC and pair name)
content_hash      string     :func:`content_hash` of (history, current): the pair's identity
model_checkpoint  string     the checkpoint that pre-filled the mask ("" when painted from nothing)
schema_version    int32      the version the row was written with (:data:`SCHEMA_VERSION` now)
identity          string     (v2) how ``annotator`` is known: ``hf`` (signed in with Hugging Face, verified),
                             ``name`` (typed, not verified), ``anonymous`` (not signed in where sign-in exists)
kind              string     (v2) ``label`` (an answer), ``gold`` (an answer for a gold pair, whose mask is
                             known: it scores the annotator, never trains), ``review`` (a reviewer's verdict)
verdict           string     (v2) for a review: ``accept`` (mask: what was accepted), ``reject`` (mask: what
                             was rejected), ``correct`` (mask: the reviewer's corrected mask); else ""
gold_iou          float32    (v2) for a gold row: the IoU of its mask with the gold mask; else null
================  =========  ===============================================================

``anomaly_type`` is a plain string checked against :data:`ANOMALY_TYPES` at write time rather than a
``ClassLabel``: a ``ClassLabel`` stores an index whose meaning is the list of names, so adding a type
would change the schema of every new shard and break loading a folder that mixes old and new shards.
With strings, a new type is a new allowed value and old shards stay valid.

**Versions.** Version 1 rows (before crowd labelling) lack the four v2 columns. The reader loads every
shard with the v2 features, so a v1 shard's missing columns come back null, and reads them as what a v1
row was: ``identity="name"``, ``kind="label"``, ``verdict=""``, ``gold_iou=None`` (:func:`row_info`).
The writer refuses to publish a shard in any schema but the current one, except that compaction upgrades
v1 shards it merges by adding those values.

Rows are de-duplicated by ``id`` when read (a compaction interrupted between writing its merged shard
and deleting the small ones may briefly leave a row in two shards; see ``annotate/store.py``). Which rows
training reads is a **policy** (``anodfdnet/data/label_policies.py``), chosen in the spec:
``hf:DIR?policy=latest|consensus|accepted[&k=K][&min_agreement=X]``. The default, ``latest``, keeps each
annotator's latest answer per pair (a pair saved again by the same person adds a row that replaces their
earlier one for training). Items are ordered by the ``(created_at, id)`` of the row that made them, so the
order does not depend on how the shards are grouped. ``key(i)`` is the content hash, so the
train/validation split (``data.split``) keeps every label of one pair on the same side, whoever painted it.
"""
from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

import numpy as np

from ..errors import UserError
from .images import load_mask, load_rgb
from .label_files import error_line, readable_shards
from .label_schema import SCHEMA_VERSION, V2_COLUMNS
from .label_schema import features as _features, v1_features as _v1_features
from .label_policies import KINDS, POLICIES, RowInfo, Selection, consensus_mask, latest_per_annotator, select
from .source import Pair, Source, load_pair
from .spec import register_source

IDENTITIES = ("hf", "name", "anonymous")
ENV_LABELS_PER_PAIR = "ANODFDNET_LABELS_PER_PAIR"

__all__ = ["ANOMALY_TYPES", "IDENTITIES", "KINDS", "LabelSource", "NO_ANOMALY", "POLICIES", "SCHEMA_VERSION",
           "content_hash", "labels_per_pair", "labels_spec", "latest_per_annotator", "row_info", "utc_now_iso"]

NO_ANOMALY = "no anomaly"
ANOMALY_TYPES = ("foreign body", "missing part", "loose part", "oil leak", "scratch / crack", "other", NO_ANOMALY)


def __getattr__(name: str):
    # FEATURES and COLUMNS need the datasets package (about a second to import), so they are built on first
    # use: every source module is imported with anodfdnet.data, and most users of the package never read labels.
    if name == "FEATURES":
        return _features()
    if name == "COLUMNS":
        return tuple(_features())
    if name == "V1_FEATURES":
        return _v1_features()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def content_hash(history, current) -> str:
    """sha256 (hex) of the pair's pixels: each image's shape, then its uint8 RGB bytes, history first.

    Any input ``images.load_rgb`` accepts; the same pixels give the same hash whatever the file format.
    """
    h = hashlib.sha256(b"anodfdnet-pair-v1\0")
    for img in (history, current):
        a = np.ascontiguousarray(load_rgb(img))
        h.update(f"{a.shape[0]}x{a.shape[1]}x{a.shape[2]}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def utc_now_iso() -> str:
    """The current time as ``created_at`` writes it: ISO 8601 UTC with microseconds and a Z."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def labels_per_pair() -> int:
    """k, the labels a pair needs (``ANODFDNET_LABELS_PER_PAIR``, default 1); a bad value is a UserError."""
    raw = os.environ.get(ENV_LABELS_PER_PAIR, "").strip() or "1"
    try:
        k = int(raw)
    except ValueError:
        k = 0
    if not 1 <= k <= 100:
        raise UserError(f"{ENV_LABELS_PER_PAIR} must be a whole number from 1 to 100, got {raw[:20]!r}.")
    return k


def row_info(i: int, row: dict) -> RowInfo:
    """The policy columns of a row (a dict of columns, images not needed), v1 rows read as v1 meant them."""
    gold = row.get("gold_iou")
    return RowInfo(
        index=i, id=row["id"], content_hash=row["content_hash"], annotator=row["annotator"],
        kind=row.get("kind") or "label", anomaly_type=row.get("anomaly_type") or "", created_at=row.get("created_at") or "",
        identity=row.get("identity") or "name", verdict=row.get("verdict") or "",
        gold_iou=None if gold is None else float(gold), source=row.get("source") or "",
    )


def parse_label_arg(arg: str, spec: str) -> tuple[str, dict]:
    """``DIR_OR_REPO[?policy=P&k=K&min_agreement=X]`` -> (DIR_OR_REPO, options); bad options are UserErrors."""
    where, _, query = arg.partition("?")
    opts: dict = {"policy": "latest", "k": None, "min_agreement": None}
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        if not eq or key not in opts:
            raise UserError(f"data spec '{spec}': unknown option '{part}'; the options are policy=latest|consensus|accepted, "
                            "k=N (labels a pair needs for a consensus) and min_agreement=X (0 to 1).")
        opts[key] = value
    if opts["policy"] not in POLICIES:
        raise UserError(f"data spec '{spec}': policy '{opts['policy']}' is not one of {', '.join(POLICIES)}.")
    if opts["k"] is not None:
        try:
            opts["k"] = int(opts["k"])
            assert opts["k"] >= 1
        except (ValueError, AssertionError):
            raise UserError(f"data spec '{spec}': k must be a whole number of at least 1.") from None
    if opts["min_agreement"] is not None:
        try:
            opts["min_agreement"] = float(opts["min_agreement"])
            assert 0.0 <= opts["min_agreement"] <= 1.0
        except (ValueError, AssertionError):
            raise UserError(f"data spec '{spec}': min_agreement must be a number from 0 to 1.") from None
        if opts["policy"] == "accepted":
            raise UserError(f"data spec '{spec}': min_agreement does not apply to the accepted policy "
                            "(the reviewer's verdict decides).")
    return where, opts


def labels_spec(labels: str, policy: str = "latest", min_agreement: float | None = None, k: int | None = None) -> str:
    """The ``hf:`` spec that reads ``labels`` (a folder or Hub id, with or without ``hf:``) with a policy.

    ``consensus`` always names its k (default :func:`labels_per_pair`), so a recorded spec reads the same
    pairs whatever the environment; ``latest`` without options is plain ``hf:LABELS``."""
    base = labels[3:] if labels.startswith("hf:") else labels
    if "?" in base:
        if policy != "latest" or min_agreement is not None or k is not None:
            raise UserError(f"'{labels}' already names its options; give the policy in one place.")
        parse_label_arg(base, f"hf:{base}")
        return f"hf:{base}"
    opts = []
    if policy != "latest":
        opts.append(f"policy={policy}")
    if policy == "consensus":
        opts.append(f"k={k if k is not None else labels_per_pair()}")
    if min_agreement is not None:
        opts.append(f"min_agreement={min_agreement:g}")
    spec = f"hf:{base}" + ("?" + "&".join(opts) if opts else "")
    parse_label_arg(spec[3:], spec)  # the same checks as reading it
    return spec


_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def _caused_by(e: BaseException | None, kind: type) -> bool:
    while e is not None:
        if isinstance(e, kind):
            return True
        e = e.__cause__ or e.__context__
    return False


class LabelSource(Source):
    """``hf:DIR_OR_REPO[?policy=...]``: the label dataset as training pairs, chosen by a policy.

    DIR is a local folder written by ``annotate.LabelStore`` (Parquet shards under ``data/``);
    anything else of the form OWNER/NAME is a Hugging Face Hub dataset id. Both are read with
    ``datasets.load_dataset`` with the current features, so shards of every schema version load together.
    Rows are de-duplicated by id, then the policy (``anodfdnet/data/label_policies.py``; default ``latest``)
    chooses the items: ``names`` are row ids (``latest``, ``accepted``) or ``consensus-<hash>``; ``key(i)``
    is the pair's content hash; ``selection`` says what the policy kept and why it left pairs out, and
    :meth:`selections` says it for every policy.
    """

    def __init__(self, arg: str, spec: str | None = None):
        self.spec = spec or f"hf:{arg}"
        self.quarantined: list[tuple[str, str]] = []  # (shard name, why) moved aside while loading
        where, opts = parse_label_arg(arg, self.spec)
        self.policy = opts["policy"]
        self.k = opts["k"] if opts["k"] is not None else labels_per_pair()
        self.min_agreement = opts["min_agreement"]
        ds = self._open_dataset(where)
        missing = [c for c in _v1_features() if c not in ds.column_names]
        if missing:
            raise UserError(f"data spec '{self.spec}': the dataset lacks the label columns {', '.join(missing)}; is it an AnoDFDNet label dataset?")
        versions = {v for v in ds["schema_version"] if v is not None}
        if versions and max(versions) > SCHEMA_VERSION:
            raise UserError(f"data spec '{self.spec}': labels of schema version {max(versions)} need a newer AnoDFDNet (this one reads up to {SCHEMA_VERSION}).")
        columns = {c: list(ds[c]) for c in ("id", "content_hash", "annotator", "anomaly_type", "created_at", "source", *V2_COLUMNS)}
        first: dict[str, int] = {}
        for i, rid in enumerate(columns["id"]):
            first.setdefault(rid, i)
        self._infos = [row_info(i, {c: columns[c][i] for c in columns}) for i in first.values()]
        self._ds = ds
        self._masks = ds.select_columns(["mask"])
        self.selection = self._select(self.policy, self.min_agreement)
        self._items = self.selection.items
        self.names = [it.name for it in self._items]
        self._keys = [it.content_hash for it in self._items]

    def _select(self, policy: str, min_agreement: float | None) -> Selection:
        return select(self._infos, policy, self.k, min_agreement, self.read_masks)

    def selections(self) -> dict[str, Selection]:
        """What each policy would keep of this dataset (with this spec's k; min_agreement for the two
        policies it applies to)."""
        out = {}
        for policy in POLICIES:
            out[policy] = self.selection if policy == self.policy else self._select(
                policy, None if policy == "accepted" else self.min_agreement)
        return out

    def read_masks(self, rows) -> list[np.ndarray]:
        """The masks (bool HxW) of rows by their index in the loaded dataset."""
        return [load_mask(self._masks[int(i)]["mask"]) for i in rows]

    def _open_dataset(self, arg: str):
        import datasets

        path = Path(arg).expanduser()
        local = path.is_dir()
        if local:
            # Each shard checked first: one unreadable file is moved aside (label_files.quarantine, a logged
            # warning naming it), not a failure of the whole folder.
            shards, moved = readable_shards(path / "data")
            self.quarantined.extend(moved)
            if not shards:
                aside = f"; {len(moved)} unreadable shard(s) moved aside to {path / 'quarantine'}" if moved else ""
                raise UserError(f"data spec '{self.spec}': '{path}' holds no labels yet (no data/*.parquet shards{aside}).")
            target = str(path)
        elif _REPO_ID.fullmatch(arg) and not path.exists():
            target = arg
        else:
            raise UserError(f"data spec '{self.spec}': '{arg}' is neither a label folder nor a Hub dataset id (OWNER/NAME).")
        # A local folder is loaded with an explicit list of its readable shards: datasets 5.2 then keys its
        # Arrow cache on the resolved shard list, whereas load_dataset(DIR) alone keys it on the card's
        # pattern and serves the first load's rows forever after, missing every later save.
        kwargs = {"data_files": {"train": [str(p) for p in shards]}} if local else {}
        kwargs["features"] = _features()  # v1 shards load too: their v2 columns come back null
        last = None
        for attempt in range(3):
            if local and attempt:  # listed again: a compaction may have merged shards, a bad one moved aside
                kwargs["data_files"] = {"train": [str(p) for p in readable_shards(path / "data")[0]]}
            try:
                return datasets.load_dataset(target, split="train", **kwargs)
            except Exception as e:  # offline, no such repo, no access, unreadable shard
                if local and _caused_by(e, FileNotFoundError):
                    # A compaction removed a small shard between listing and reading; its rows are in
                    # the merged shard, so listing again finds them.
                    last = e
                    time.sleep(0.2 * (attempt + 1))
                    continue
                if local and attempt < 2:
                    # A damaged page behind a good footer: read every shard whole, move the bad ones aside.
                    _, moved = readable_shards(path / "data", full=True)
                    if moved:
                        self.quarantined.extend(moved)
                        last = e
                        continue
                where = "the folder" if local else "the Hub dataset"
                raise UserError(f"data spec '{self.spec}': could not load {where} '{target}' ({error_line(e)}).") from None
        raise UserError(f"data spec '{self.spec}': could not load '{target}' ({error_line(last)}).")

    def key(self, i: int) -> str:
        return self._keys[self._index(i)]

    def cache_key(self, i: int) -> str:
        """What item ``i`` is made of: its name and the ids of the rows of its images and masks. Rows never
        change, so a cache entry under this key never goes stale (``anodfdnet/data/pair_cache.py``)."""
        item = self._items[self._index(i)]
        ids = {r.index: r.id for r in self._infos}
        return f"{item.name}|{ids[item.image_row]}|{','.join(ids[j] for j in item.mask_rows)}"

    def recorded_source(self, i: int) -> str:
        """The ``source`` column of the row whose images pair ``i`` uses: ``SPEC#NAME`` for a queue's pair,
        ``upload`` (or "") otherwise."""
        row = self._items[self._index(i)].image_row
        return next((r.source for r in self._infos if r.index == row), "")

    def row(self, i: int) -> dict:
        """The raw row (images decoded as PIL) whose images pair ``i`` uses."""
        return self._ds[self._items[self._index(i)].image_row]

    def _load(self, i: int) -> Pair:
        item = self._items[i]
        r = self._ds[item.image_row]
        masks = self.read_masks(item.mask_rows)
        mask = masks[0] if len(masks) == 1 else consensus_mask(masks)
        return load_pair(item.name, r["history"], r["current"], mask)


register_source(
    "hf",
    lambda arg, spec: LabelSource(arg, spec),
    "hf:DIR_OR_REPO[?policy=latest|consensus|accepted&k=K&min_agreement=X]   labels saved by the app's Label tab: "
    "a local folder (default ./labels) or a Hub dataset id; the policy chooses which labels train (default latest)",
)
