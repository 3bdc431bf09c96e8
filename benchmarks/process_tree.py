"""CPU and memory of a process tree, read from /proc: what ``python -m benchmarks inspect`` samples every 0.5 s of an
engine's run (the command and, for Ray, its raylet, GCS, workers and daemons): summed RSS, PSS (each shared page
divided among the processes that map it), and each process's CPU seconds by role (driver, model actor, CPU task
workers, Ray's daemons)."""
from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_role(pid: int, root: int, cmdline: list[str]) -> str:
    """What a process of an engine's tree is, for the CPU table: the command itself, Ray's workers by their title
    (Ray renames a worker ``ray::<what it runs>``), Ray's daemons by program or script name."""
    if pid == root:
        return "the command (driver)"
    first = cmdline[0] if cmdline else ""
    if first.startswith("ray::"):
        title = first.split()[0]
        if "MapWorker" in title or "_Model" in title:
            return "Ray: model actor"
        if "IDLE" in title or "MapBatches" in title or "ReadRange" in title or "FromItems" in title:
            return "Ray: CPU task workers"
        return "Ray: other workers"
    name = os.path.basename(first)
    if name.startswith("python") and len(cmdline) > 1:
        script = next((os.path.basename(c) for c in cmdline[1:] if c.endswith(".py")), cmdline[1])
        return f"Ray: {script}" if "ray" in " ".join(cmdline) else script
    return f"Ray: {name}" if name in ("raylet", "gcs_server", "plasma_store") else name or "?"


def _tree_pids(pid: int) -> list[int]:
    """pid and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        q = todo.pop()
        out.append(q)
        todo.extend(children.get(q, []))
    return out


def _kb_field(path: str, key: str) -> int:
    """Bytes of a ``key: N kB`` line of a /proc file (``status``, ``smaps_rollup``); 0 where it has none."""
    for line in Path(path).read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    return 0


def tree_pss(pid: int) -> int:
    """Proportional set size (bytes) of pid and its descendants: each shared page (Ray's object store, libraries)
    divided among the processes that map it, so unlike summed RSS a page counts once for the whole tree."""
    total = 0
    for q in _tree_pids(pid):
        try:
            total += _kb_field(f"/proc/{q}/smaps_rollup", "Pss:")
        except (OSError, ValueError, IndexError):
            pass
    return total


def tree_sample(pid: int, cpu: dict | None = None) -> int:
    """RSS bytes of pid and all its descendants; with ``cpu``, also record each one's CPU seconds so far (user + system,
    its threads included) as ``cpu[pid] = (role, seconds)``: a process that exits keeps its last sample."""
    total = 0
    for q in _tree_pids(pid):
        try:
            total += _kb_field(f"/proc/{q}/status", "VmRSS:")
            if cpu is not None:
                fields = Path(f"/proc/{q}/stat").read_text().rsplit(")", 1)[1].split()
                seconds = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
                argv = [a.decode(errors="replace") for a in Path(f"/proc/{q}/cmdline").read_bytes().split(b"\0") if a]
                # an exiting process has no command line any more: it keeps the role it was seen with
                role = process_role(q, pid, argv) if argv else cpu.get(q, ("?",))[0]
                cpu[q] = (role, seconds)
        except (OSError, ValueError, IndexError):
            pass
    return total


def cpu_by_role(before: dict, after: dict, pairs: int) -> dict:
    """CPU milliseconds per pair of each role between two snapshots of ``tree_sample``'s ``cpu`` (``pairs`` finished
    between them), largest first, with the total."""
    if pairs <= 0:
        return {}
    roles: dict[str, float] = {}
    for q, (role, seconds) in after.items():
        roles[role] = roles.get(role, 0.0) + seconds - before.get(q, (role, 0.0))[1]
    out = {k: v * 1000 / pairs for k, v in sorted(roles.items(), key=lambda kv: -kv[1]) if v > 0}
    out["total"] = sum(out.values())
    return out
