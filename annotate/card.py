"""The label dataset's card (README.md): its front matter, what the columns mean, and the crowd summary.

The card is written when the store has none, rewritten when it describes an older schema (so that
``datasets.load_dataset(ROOT)`` reads shards of every version with the current features), and
refreshed with the summary (``annotate/summary.py``) on every compaction. What a person added is kept:
every front-matter key but ``configs`` and ``dataset_info`` (e.g. the ``license`` they set), and all text
below the line ``<!-- notes: text below this line is kept when the card is refreshed -->``. Every write
replaces the file whole (a temporary file, fsynced, renamed).
"""
from __future__ import annotations

import os
from pathlib import Path

from anodfdnet.data.labels import ANOMALY_TYPES, FEATURES, SCHEMA_VERSION

from .shards import write_text_atomically

NOTES = "<!-- notes: text below this line is kept when the card is refreshed -->"
SUMMARY_START = "<!-- summary: written by `python -m annotate compact` -->"
SUMMARY_END = "<!-- end of summary -->"
MANAGED_KEYS = ("configs", "dataset_info")


def _front_matter(path: Path) -> tuple[dict, str]:
    """(front matter, body) of an existing card; ({}, "") when there is none or it cannot be parsed."""
    import yaml

    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}, ""
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end > 0:
            try:
                meta = yaml.safe_load(text[4:end]) or {}
            except yaml.YAMLError:
                meta = {}
            return (meta if isinstance(meta, dict) else {}), text[end + 5:]
    return {}, text


def _features_yaml() -> list:
    return FEATURES._to_yaml_list()


def is_current(path: Path) -> bool:
    """True when the card exists and its features are the current schema's."""
    meta, _ = _front_matter(path)
    return bool(meta) and (meta.get("dataset_info") or {}).get("features") == _features_yaml()


def card_text(path: Path, summary_markdown: str | None = None) -> str:
    """The card for the store whose card is at ``path``, keeping what a person added to the old one."""
    import yaml

    old, body = _front_matter(path)
    meta = {
        "license": os.environ.get("ANODFDNET_LABEL_LICENSE", "other"),
        "pretty_name": "AnoDFDNet anomaly masks",
        "task_categories": ["image-segmentation"],
        "tags": ["anomaly-detection", "change-detection", "anodfdnet"],
    }
    meta.update({k: v for k, v in old.items() if k not in MANAGED_KEYS})
    meta["configs"] = [{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}]
    meta["dataset_info"] = {"features": _features_yaml()}
    notes = body.split(NOTES, 1)[1] if NOTES in body else "\n"
    if summary_markdown is None and SUMMARY_START in body and SUMMARY_END in body:  # keep the last summary
        summary_markdown = body.split(SUMMARY_START, 1)[1].split(SUMMARY_END, 1)[0].strip()
    types = ", ".join(f"`{t}`" for t in ANOMALY_TYPES)
    summary = (f"## Summary\n\n{SUMMARY_START}\n{summary_markdown.strip()}\n{SUMMARY_END}\n\n" if summary_markdown
               else "")
    return (
        "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n"
        "# AnoDFDNet anomaly masks\n\n"
        "Pairs of inspection images of one place at two times (*history*, earlier and known good; *current*, later)\n"
        "with a mask, painted in the AnoDFDNet app's Label tab, of what is anomalous in the current image.\n\n"
        + summary +
        f"## Columns (schema version {SCHEMA_VERSION})\n\n"
        "One row per saved answer or review:\n\n"
        "- `id`: unique row id; `content_hash`: sha256 of the pair's pixels (the pair's identity; split train/val on it)\n"
        "- `history`, `current`: lossless PNG, both the current image's size: a history of another size was\n"
        "  resized to it before it was stored (area averaging when shrinking, bilinear when enlarging), exactly as\n"
        "  training reads a pair, so the stored pixels are the ones a model learns from\n"
        "- `mask`: 8-bit PNG {0, 255}, the current image's size\n"
        f"- `anomaly_type`: one of {types} (`no anomaly` exactly when the mask is empty)\n"
        "- `annotator`: who answered; `identity`: how that is known: `hf` (signed in with a Hugging Face account),\n"
        "  `name` (a typed name, not verified), `anonymous` (not signed in, on a deployment with sign-in)\n"
        "- `kind`: `label` (an answer), `gold` (an answer for a gold pair, whose true mask is known: `gold_iou` is\n"
        "  the answer's IoU with it; gold rows score annotators and are never used for training), `review` (a\n"
        "  reviewer's verdict on a pair: `verdict` is `accept` or `reject` with the mask judged, or `correct` with\n"
        "  the reviewer's corrected mask)\n"
        "- `note`, `created_at` (ISO 8601 UTC), `source` (where the pair came from), `model_checkpoint` (the model\n"
        "  that pre-filled the mask, empty when painted from nothing), `schema_version` (the row's version; rows of\n"
        "  version 1 have no `identity`, `kind`, `verdict`, `gold_iou`, read as `name`, `label`, empty, null)\n\n"
        "## Which rows to train on\n\n"
        "Rows are append-only: saving a pair again adds a row. When one annotator labelled one pair several times\n"
        "(same `content_hash`, same `annotator`), training uses that annotator's latest row (by `created_at`) and\n"
        "ignores the earlier ones. Several annotators may label one pair; AnoDFDNet's policies\n"
        "(`--labels-policy`) read the dataset as: `latest` (every annotator's latest answer), `consensus` (per pair\n"
        "with at least k answers, the per-pixel majority of their masks, a tie counting as anomalous) or `accepted`\n"
        "(the masks reviewers accepted or corrected). `--min-agreement X` leaves out pairs whose annotators' masks\n"
        "agree less (mean pairwise IoU) than X.\n\n"
        "Each save adds one Parquet shard under `data/`; a compaction may merge shards. Read with\n"
        "`datasets.load_dataset(\"<this folder or repo>\")`, or train on it with AnoDFDNet:\n"
        "`python -m anodfdnet adapt --labels <this folder or repo> --labels-policy consensus --from effnet-d2 --out runs/adapt`.\n"
        "If a row id appears twice (an interrupted compaction), the rows are identical: keep one.\n\n"
        "License: set the `license` field above to the terms the images may be shared under.\n\n"
        f"{NOTES}" + notes
    )


def ensure_card(path: Path) -> None:
    """Write the card if it is missing or describes an older schema."""
    if not is_current(path):
        write_card(path, None)


def write_card(path: Path, summary_markdown: str | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, card_text(path, summary_markdown))
