"""Label store commands: ``python -m annotate status | compact | push`` (no Gradio needed).

    python -m annotate status  [--labels DIR]                 rows, shards, Hub sync state
    python -m annotate compact [--labels DIR] [--max-rows N] [--max-mb M]
    python -m annotate push    [--labels DIR]                 push waiting shards once (HF_TOKEN, ANODFDNET_DATASET_REPO)

DIR defaults to $ANODFDNET_LABEL_DIR, else ./labels. Compaction is safe while the app is saving.
"""
from __future__ import annotations

import argparse
import sys

from anodfdnet.errors import UserError

from .hub_sync import HubSync
from .store import LabelStore


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m annotate", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, help_ in (("status", "rows, shards and Hub sync state"), ("compact", "merge small shards into larger ones"),
                        ("push", "push the shards waiting for the Hub, once")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--labels", default=None, help="the label folder (default $ANODFDNET_LABEL_DIR, else ./labels)")
        if name == "compact":
            s.add_argument("--max-rows", type=int, default=1000, help="rows per merged shard at most (default 1000)")
            s.add_argument("--max-mb", type=float, default=512.0, help="size of a merged shard at most, MB (default 512)")
    a = p.parse_args(argv)
    store = LabelStore(a.labels)
    try:
        if not store.data_dir.is_dir():
            raise UserError(f"'{store.root}' holds no labels (no data/ folder).")
        if a.cmd == "status":
            print(f"{store.root}: {store.size()} labels in {len(store.shards())} shards")
            print(HubSync(store).status_text())
        elif a.cmd == "compact":
            before = len(store.shards())
            r = store.compact(max_rows=a.max_rows, max_mb=a.max_mb)
            print(f"merged {r.removed} shards into {len(r.merged)} ({r.rows} rows); {before} -> {len(store.shards())} shards, "
                  f"{store.size()} labels")
        elif a.cmd == "push":
            sync = HubSync(store)
            if not sync.enabled:
                raise UserError("set HF_TOKEN and ANODFDNET_DATASET_REPO (OWNER/NAME of an existing dataset repo) to push.")
            total = 0
            while (n := sync.push_once()) > 0:  # 50 shards a commit
                total += n
            print(f"pushed {total} shards; {sync.status_text()}")
            return 0 if sync.last_error is None else 1
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
