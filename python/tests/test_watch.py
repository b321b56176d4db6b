"""watch(): events in revision order, resume, cancel from a thread, reconnect after a
server restart, OUT_OF_RANGE beyond the server's event window."""

import queue
import threading
import time

import pytest

import mgreg
from conftest import copy_checkpoint


def take(events, n):
    out = []
    for e in events:
        out.append(e)
        if len(out) == n:
            return out
    return out


def test_events_arrive_in_revision_order_and_resume_misses_nothing(client, data, model,
                                                                   tmp_path):
    first = client.push(model, copy_checkpoint(data.tictactoe, tmp_path, "ckpt-1"),
                        progress=False)
    client.set_alias(model, "production", 1)
    client.push(model, copy_checkpoint(data.tictactoe, tmp_path, "ckpt-2"), progress=False)
    client.delete(model, 2)
    client.remove_alias(model, "production")
    with client.watch(model, since_revision=first.revision - 1) as w:
        events = take(w, 5)
    assert [(e.type, e.step) for e in events] == [
        ("COMMITTED", 1), ("ALIAS_SET", 1), ("COMMITTED", 2), ("DELETED", 2),
        ("ALIAS_REMOVED", 1)]
    assert events[1].alias == "production"
    revisions = [e.revision for e in events]
    assert revisions == sorted(set(revisions)) and revisions[0] == first.revision
    with client.watch(model, since_revision=events[1].revision) as w:
        assert take(w, 3) == events[2:]


def test_cancel_from_another_thread_ends_the_iteration(client, data, model):
    client.push(model, data.tictactoe, progress=False)
    w = client.watch(model)  # new events only: it blocks
    cancelled_at = []

    def cancel():
        cancelled_at.append(time.monotonic())
        w.cancel()
    threading.Timer(0.2, cancel).start()
    assert list(w) == []
    assert time.monotonic() - cancelled_at[0] < 1.0
    assert w.cancelled


def test_watch_reconnects_after_a_server_restart(make_server, data, model, tmp_path):
    srv = make_server("--data-dir", str(tmp_path / "db"), "--shutdown-deadline", "1s")
    got = queue.Queue()
    with mgreg.Client(srv.address) as c:
        c.push(model, copy_checkpoint(data.tictactoe, tmp_path, "ckpt-1"), progress=False)
        w = c.watch(model, since_revision=0)

        def run():
            try:
                for e in w:
                    got.put(e)
            except Exception as e:  # pylint: disable=broad-except
                got.put(e)
        t = threading.Thread(target=run)
        t.start()
        assert got.get(timeout=30).step == 1
        srv.restart()
        with mgreg.Client(srv.address) as fresh:
            fresh.push(model, copy_checkpoint(data.tictactoe, tmp_path, "ckpt-2"),
                       progress=False)
        e = got.get(timeout=60)
        assert (e.type, e.step) == ("COMMITTED", 2), e
        assert w.reconnects >= 1
        w.cancel()
        t.join(timeout=10)
        assert got.empty()


def test_resuming_beyond_the_event_window_raises_out_of_range(make_server, data, model,
                                                              tmp_path):
    srv = make_server("--in-memory", "--event-window", "4")
    with mgreg.Client(srv.address) as c:
        for step in range(1, 7):
            c.push(model, copy_checkpoint(data.tictactoe, tmp_path, f"ckpt-{step}"),
                   progress=False)
        with pytest.raises(mgreg.OutOfRangeError, match="oldest"):
            take(c.watch(model, since_revision=1), 1)


def test_watch_needs_exactly_one_target(client):
    with pytest.raises(mgreg.InvalidArgumentError):
        client.watch()
    with pytest.raises(mgreg.InvalidArgumentError):
        client.watch("m", all_models=True)
