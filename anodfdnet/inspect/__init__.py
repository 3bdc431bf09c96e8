"""Batch inspection of an archive: ``python -m anodfdnet inspect --data SPEC --out RUN``.

- ``run``: the job (``InspectConfig``, ``inspect_archive``): resumable, one results table, errors listed;
- the engines: ``local`` (the prefetching pipeline of ``anodfdnet.inference``, in this process; the default)
  and ``ray_engine`` (Ray Data over a local Ray or a cluster; Ray is an optional extra, imported only there);
- ``outputs``: what is kept of one pair (scores, regions, PNGs, thumbnails), the same for both engines;
- ``results``: the journal that makes a run resumable and ``results.parquet``;
- ``report``: ``RUN/report.html``, self-contained, worst pairs first;
- ``to_queue``: the top pairs into a manifest the Label tab's queue reads.

Importing this package imports neither Ray nor anything of the app.
"""
from .run import InspectConfig, Summary, inspect_archive

__all__ = ["InspectConfig", "Summary", "inspect_archive"]
