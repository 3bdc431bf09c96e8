"""Label store commands: ``python -m annotate status | compact | push | export | queue add`` (no Gradio needed).

    python -m annotate status  [--labels DIR] [--queue SPEC] [--k K]      labels, agreement, annotators, reviews, Hub
    python -m annotate compact [--labels DIR] [--max-rows N] [--max-mb M] merge shards, refresh the dataset card
    python -m annotate push    [--labels DIR]                             push waiting shards once (HF_TOKEN, ANODFDNET_DATASET_REPO)
    python -m annotate export  --format ab OUT [--labels DIR] [--labels-policy P] [--min-agreement X] [--k K]
    python -m annotate queue add RUN [--top N] [--rank score|uncertainty] [--queue FILE.csv]
                                                                          an inspection run's top pairs into the Label queue

DIR defaults to $ANODFDNET_LABEL_DIR, else ./labels; SPEC to $ANODFDNET_QUEUE; K to
$ANODFDNET_LABELS_PER_PAIR, else 1. Compaction is safe while the app is saving.
"""
from __future__ import annotations

import argparse
import sys

from anodfdnet.cli import labels_k
from anodfdnet.errors import UserError

from .hub_sync import HubSync
from .store import LabelStore

POLICY_HELP = ("which labels: latest (every annotator's latest answer), consensus (per pair with k answers, their "
               "per-pixel majority), accepted (reviewer-accepted or corrected masks); default latest")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m annotate", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    helps = {"status": "labels, agreement, annotators and their gold IoU, reviews, Hub sync state",
             "compact": "merge small shards into larger ones and refresh the dataset card's summary",
             "push": "push the shards waiting for the Hub, once",
             "export": "write a labels policy's pairs as an ab: folder (A/, B/, label/ PNGs), each named after the "
                       "source pair its label recorded (a queue's pair name), else after the pair's content hash"}
    for name, help_ in helps.items():
        s = sub.add_parser(name, help=help_, description=help_)
        s.add_argument("--labels", default=None, help="the label folder (default $ANODFDNET_LABEL_DIR, else ./labels)")
        if name in ("status", "compact"):
            s.add_argument("--queue", default=None, metavar="SPEC",
                           help="the pairs to label, for 'labelled / total' (default $ANODFDNET_QUEUE)")
        if name in ("status", "compact", "export"):
            s.add_argument("--k", type=labels_k, default=None,
                           help="labels a pair needs, at least 1 (default $ANODFDNET_LABELS_PER_PAIR, else 1)")
        if name == "compact":
            s.add_argument("--max-rows", type=int, default=1000, help="rows per merged shard at most (default 1000)")
            s.add_argument("--max-mb", type=float, default=512.0, help="size of a merged shard at most, MB (default 512)")
        if name == "export":
            s.add_argument("out", metavar="OUT", help="a new (or empty) folder")
            s.add_argument("--format", choices=("ab",), required=True, help="ab: OUT/A (history), OUT/B (current), OUT/label")
            s.add_argument("--labels-policy", choices=("latest", "consensus", "accepted"), default="latest", help=POLICY_HELP)
            s.add_argument("--min-agreement", type=float, default=None,
                           help="leave out pairs whose annotators' masks agree less (mean pairwise IoU, 0 to 1)")
    q = sub.add_parser("queue", help="feed the Label tab's queue", description="feed the Label tab's queue")
    qsub = q.add_subparsers(dest="queue_cmd", required=True)
    qa = qsub.add_parser("add", help="add an inspection run's top pairs to the queue manifest",
                         description="Add the top pairs of a run of `python -m anodfdnet inspect` to the queue manifest the "
                                     "Label tab reads (ANODFDNET_QUEUE=manifest:FILE.csv); the tab picks them up without a restart.")
    qa.add_argument("run", metavar="RUN", help="the inspection run folder (inspect --out)")
    qa.add_argument("--top", type=int, default=20, help="pairs to add (default 20)")
    qa.add_argument("--rank", choices=("score", "uncertainty"), default="score",
                    help="score: highest anomaly probability first; uncertainty: most pixels near the threshold first (default score)")
    qa.add_argument("--queue", default=None, metavar="FILE.csv", help="the queue manifest (default: the file of "
                    "$ANODFDNET_QUEUE when it is manifest:FILE.csv, else LABELS/queue.csv)")
    qa.add_argument("--labels", default=None, help="the label folder (default $ANODFDNET_LABEL_DIR, else ./labels)")
    a = p.parse_args(argv)
    if a.cmd == "queue":
        try:
            return _queue_add(a)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    store = LabelStore(a.labels)
    try:
        if not store.data_dir.is_dir():
            raise UserError(f"'{store.root}' holds no labels (no data/ folder).")
        if a.cmd == "status":
            from .summary import summarize

            rows = store.size()  # reads every shard's index first: an unreadable one is moved aside, and listed below
            print(f"{store.root}: {rows} rows in {len(store.shards())} shards")
            print(summarize(store, _queue(store, a.queue, a.k), HubSync(store), k=a.k).text())
        elif a.cmd == "compact":
            from .summary import compact, row_counts

            before = len(store.shards())
            r = compact(store, _queue(store, a.queue, a.k), max_rows=a.max_rows, max_mb=a.max_mb)
            labels, reviews = row_counts(store)
            print(f"merged {r.removed} shards into {len(r.merged)} ({r.rows} rows); {before} -> {len(store.shards())} shards, "
                  f"{labels} label rows" + (f", {reviews} review rows" if reviews else "") + "; dataset card refreshed")
            for q in store.quarantined():
                print(f"unreadable shard moved aside, not merged: {store.root / 'quarantine' / q.name} ({q.reason})")
        elif a.cmd == "push":
            sync = HubSync(store)
            if not sync.enabled:
                raise UserError("set HF_TOKEN and ANODFDNET_DATASET_REPO (OWNER/NAME of an existing dataset repo) to push.")
            total = 0
            while (n := sync.push_once()) > 0:  # 50 shards a commit
                total += n
            print(f"pushed {total} shards; {sync.status_text()}")
            return 0 if sync.last_error is None else 1
        elif a.cmd == "export":
            from .export import export_ab

            source = export_ab(store.root, a.out, a.labels_policy, a.min_agreement, a.k)
            for name, why in source.quarantined:
                print(f"unreadable shard data/{name} moved aside to {store.root / 'quarantine'}, not exported ({why})")
            print(f"wrote {len(source.selection.items)} pairs to {a.out} (A/, B/, label/); {source.selection.describe()}")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _queue_add(a) -> int:
    """``queue add RUN``: the run's top pairs into the queue manifest (``anodfdnet.inspect.to_queue``)."""
    import os
    from pathlib import Path

    from anodfdnet.inspect.to_queue import add_to_queue

    from .queue import ENV_QUEUE

    target = a.queue
    spec = os.environ.get(ENV_QUEUE, "").strip()
    if target is None and spec.startswith("manifest:"):
        target = spec[len("manifest:"):]
    if target is None:
        target = str(LabelStore(a.labels).root / "queue.csv")
    added = add_to_queue(a.run, target, top=a.top, rank=a.rank)
    print(f"added {added} pairs of {a.run} (top {a.top} by {a.rank}) to {target}")
    if spec != f"manifest:{target}":
        print(f"the Label tab serves them with {ENV_QUEUE}=manifest:{Path(target).resolve()}")
    return 0


def _queue(store: LabelStore, spec: str | None, k: int | None):
    """The queue for progress figures, or None when there is none."""
    import os

    from .queue import ENV_QUEUE, LabelQueue

    spec = spec if spec is not None else os.environ.get(ENV_QUEUE, "")
    if not spec.strip():
        return None
    return LabelQueue(store, spec, k=k, gold="")


if __name__ == "__main__":
    sys.exit(main())
