"""Only the newest of a session's page runs fills the page (demo.latest): runs in real threads, the older one
held until the newer has finished, as when a visitor picks a faster model while a slower one still runs."""
import threading
from types import SimpleNamespace

import gradio as gr
import pytest

from demo.latest import LatestRuns, newest_only

SKIPS = tuple(gr.skip() for _ in range(3))


def _held_model():
    """A stand-in for predict: returns (model, ...) once its model's gate opens; 'fail' raises."""
    gates = {"slow": threading.Event(), "fast": threading.Event(), "fail": threading.Event()}
    started = {k: threading.Event() for k in gates}

    def fn(history, current, model, threshold, align):
        started[model].set()
        assert gates[model].wait(10)
        if model == "fail":
            raise RuntimeError("the older run failed")
        return (model, threshold, align)

    return fn, gates, started


def _in_thread(event, model, session):
    out = {}

    def go():
        try:
            out["result"] = event("h", "c", model, 0.5, "auto", SimpleNamespace(session_hash=session))
        except Exception as e:  # noqa: BLE001 - the test reads what came out
            out["error"] = e

    t = threading.Thread(target=go)
    t.start()
    return t, out


def _older_then_newer(event, started, older_model, newer_model):
    """Two runs of one session, both in flight (each held at its gate): (older thread, out), (newer thread, out)."""
    older = _in_thread(event, older_model, "s1")
    assert started[older_model].wait(10)
    newer = _in_thread(event, newer_model, "s1")
    assert started[newer_model].wait(10)
    return older, newer


def test_an_older_run_that_finishes_last_leaves_the_page_to_the_newer():
    fn, gates, started = _held_model()
    (older, older_out), (newer, newer_out) = _older_then_newer(newest_only(fn, 3, LatestRuns()), started, "slow", "fast")
    gates["fast"].set()
    newer.join(10)
    gates["slow"].set()  # the older run ends after the newer one
    older.join(10)
    assert newer_out == {"result": ("fast", 0.5, "auto")}
    assert older_out == {"result": SKIPS}


def test_runs_of_other_sessions_and_runs_in_order_all_fill_their_pages():
    fn, gates, started = _held_model()
    for g in gates.values():
        g.set()
    event = newest_only(fn, 3, LatestRuns())
    a, a_out = _in_thread(event, "slow", "s1")
    b, b_out = _in_thread(event, "fast", "s2")  # another visitor's run does not overtake s1's
    a.join(10), b.join(10)
    assert a_out == {"result": ("slow", 0.5, "auto")} and b_out == {"result": ("fast", 0.5, "auto")}
    c, c_out = _in_thread(event, "slow", "s1")  # a later run of s1, after the first ended: its own result
    c.join(10)
    assert c_out == {"result": ("slow", 0.5, "auto")}


def test_an_overtaken_runs_error_is_not_shown_but_the_newest_runs_is():
    fn, gates, started = _held_model()
    event = newest_only(fn, 3, LatestRuns())
    (older, older_out), (newer, newer_out) = _older_then_newer(event, started, "fail", "fast")
    gates["fail"].set()
    older.join(10)
    gates["fast"].set()
    newer.join(10)
    assert older_out == {"result": SKIPS}
    assert newer_out == {"result": ("fast", 0.5, "auto")}
    alone, alone_out = _in_thread(event, "fail", "s2")  # the newest run's own error reaches the page
    alone.join(10)
    assert isinstance(alone_out.get("error"), RuntimeError)


def test_tickets_are_bounded_and_a_forgotten_or_unnamed_session_counts_as_newest():
    runs = LatestRuns(max_sessions=2)
    t1 = runs.start("a")
    runs.start("b"), runs.start("c")  # "a" forgotten: at most 2 sessions kept
    assert len(runs._newest) == 2
    assert runs.is_newest("a", t1)
    t2 = runs.start("b")
    assert runs.is_newest("b", t2) and not runs.is_newest("b", t2 - 1)
    assert runs.is_newest(None, runs.start(None)) and runs.is_newest(None, 5)
    huge = "a" * 10**6  # a request's session id is not bounded: the table keeps a digest of a long one
    t3 = runs.start(huge)
    assert runs.is_newest(huge, t3) and not runs.is_newest(huge, t3 - 1)
    assert max(map(len, runs._newest)) <= 64
    assert not runs.is_newest(huge, runs.start(huge) - 1) and runs.is_newest("a" * 999_999 + "b", 1)


@pytest.mark.parametrize("name", ["predict", "page_rerun"])
def test_the_page_events_take_the_request_gradio_injects(name):
    """Gradio passes gr.Request to a parameter annotated with it: the wrapper must declare one."""
    import inspect

    import demo.tab as tab

    event = newest_only(getattr(tab, name), 8, LatestRuns())
    params = inspect.signature(event).parameters
    assert params["request"].annotation in (gr.Request, "gr.Request")
    assert list(params)[:5] == ["history", "current", "model", "threshold", "align"]
    assert event.__name__ == name  # the name Gradio derives the event's private name from
