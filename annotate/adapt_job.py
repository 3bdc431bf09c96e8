"""An adaptation started from the app: ``python -m anodfdnet adapt`` on the collected labels, in the background.

One job at a time per app process. It runs as a child process at a lower CPU priority (``nice``), so the
app's own inference keeps serving while it trains, and its CPU budget is the one the reviewer chose (at most
:data:`MAX_BUDGET_MINUTES`). It installs its chosen checkpoint into the app's checkpoint folder under a name
of its own, where the model menu finds it on its next refresh; when the adapted model is not better on
held-out labelled pairs nothing is installed and the report says so. Progress is read from the run folder
(``progress.json``, and the current run's ``log.jsonl``), never from the child's memory.

No Gradio here; ``review_tab.py`` wires it to the page, and only a verified reviewer may start a job.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from anodfdnet.checkpoint import ENV_DIR, SHIPPED_DIR
from anodfdnet.errors import UserError

MAX_BUDGET_MINUTES = 60.0
NICE = 10
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,47}")


@dataclass
class JobState:
    state: str  # "idle", "running", "done", "failed"
    message: str
    fraction: float = 0.0
    report: dict | None = None


class AdaptJob:
    """The app's one background adaptation. ``root``: where run folders go; ``checkpoint_dir``: where the
    chosen checkpoint is installed (``$ANODFDNET_CHECKPOINT_DIR`` or the shipped folder by default)."""

    def __init__(self, labels_dir: str | Path, root: str | Path, checkpoint_dir: str | Path | None = None,
                 extra_args: tuple[str, ...] = ()):
        self.labels_dir = Path(labels_dir)
        self.extra_args = tuple(extra_args)  # more options of ``adapt`` (tests: a step cap, a small crop)
        self.root = Path(root)
        self.checkpoint_dir = Path(checkpoint_dir or os.environ.get(ENV_DIR) or SHIPPED_DIR)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._run: Path | None = None
        self._budget = 0.0
        self._started_by = ""
        self._result: JobState | None = None

    def start(self, base: str, budget_minutes: float, policy: str, started_by: str) -> str:
        """Start a job (a UserError when one runs, or the inputs are out of range); returns the new checkpoint's name."""
        try:
            budget = float(budget_minutes)
        except (TypeError, ValueError):
            raise UserError("the CPU budget must be a number of minutes.") from None
        if not 0.5 <= budget <= MAX_BUDGET_MINUTES:
            raise UserError(f"the CPU budget must lie between 0.5 and {MAX_BUDGET_MINUTES:g} minutes.")
        if policy not in ("latest", "consensus", "accepted"):
            raise UserError("the labels policy must be latest, consensus or accepted.")
        if not _NAME.fullmatch(base or ""):
            raise UserError("choose a listed model to adapt.")
        if not any((self.labels_dir / "data").glob("*.parquet")):
            raise UserError("there are no saved labels to adapt to yet.")
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                raise UserError("an adaptation is already running; wait for it to finish.")
            stamp = time.strftime("%Y%m%d-%H%M%S")
            name = f"{base}-adapted-{stamp}"
            self._run = self.root / name
            self._run.mkdir(parents=True, exist_ok=True)
            log = open(self._run / "adapt.log", "w")
            cmd = [sys.executable, "-m", "anodfdnet", "adapt", "--labels", str(self.labels_dir), "--labels-policy", policy,
                   "--from", base, "--out", str(self._run), "--budget-minutes", f"{budget:g}", "--name", name,
                   "--domain", "labels", *self.extra_args]
            env = {**os.environ, ENV_DIR: str(self.checkpoint_dir), "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(Path(__file__).resolve().parents[1]),
                                          preexec_fn=(lambda: os.nice(NICE)) if hasattr(os, "nice") else None)
            log.close()
            self._budget, self._started_by, self._result = budget, started_by, None
            return name

    def status(self) -> JobState:
        """Where the job stands: idle, running (with the share of its budget spent), done (with its report) or failed."""
        with self._lock:
            proc, run = self._proc, self._run
            if proc is None or run is None:
                return JobState("idle", "No adaptation has run in this app yet.")
            code = proc.poll()
            if code is None:
                fraction, what = self._progress(run)
                return JobState("running", f"Adapting ({what}); started by {self._started_by}.", fraction)
            if self._result is None:
                self._result = self._finished(run, code)
            return self._result

    def _progress(self, run: Path) -> tuple[float, str]:
        try:
            p = json.loads((run / "progress.json").read_text())
        except (OSError, ValueError):
            return 0.0, "preparing"
        done_runs = p["run"] - 1
        current = 0.0
        try:
            lines = (run / p["folder"] / "log.jsonl").read_text().splitlines()
            if lines and p.get("minutes_per_run"):
                current = min(1.0, json.loads(lines[-1])["cpu_minutes"] / p["minutes_per_run"])
        except (OSError, ValueError, KeyError):
            pass
        return min(1.0, (done_runs + current) / p["runs"]), f"run {p['run']} of {p['runs']}"

    def _finished(self, run: Path, code: int) -> JobState:
        if code != 0:
            tail = (run / "adapt.log").read_text(errors="replace").strip().splitlines()[-1:] if (run / "adapt.log").exists() else []
            why = tail[0].removeprefix("error: ") if tail else f"exit code {code}"
            return JobState("failed", f"The adaptation failed: {why}", 1.0)
        try:
            report = json.loads((run / "report.json").read_text())
        except (OSError, ValueError):
            return JobState("failed", "The adaptation ended without a report.", 1.0)
        return JobState("done", describe_outcome(report), 1.0, report)


def describe_outcome(report: dict) -> str:
    """One paragraph for the page: held-out F1 before and after, and what was installed."""
    held = report.get("heldout") or {}
    if not held:
        return (f"Adapted on {report['pairs']} labelled pair(s); with one pair nothing can be held out, so the model was "
                "not installed. Label at least two pairs.")
    before, chosen = held["before"]["f1"], report["choice"]
    if chosen == "before":
        return (f"Held-out F1 on {report['pairs']} labelled pairs: before {100 * before:.1f} %, adapted "
                f"{100 * held['adapted']['f1']:.1f} %. The adapted model is not better, so nothing was installed.")
    name = Path(report["installed"]).stem.removeprefix("anodfdnet-") if report.get("installed") else "(not installed)"
    what = "the adapted model" if chosen == "adapted" else "the old model with a threshold fitted to your labels"
    return (f"Held-out F1 on {report['pairs']} labelled pairs: before {100 * before:.1f} %, {chosen} "
            f"{100 * held[chosen]['f1']:.1f} %. Installed {what} as {name}; it is in the model menu.")
