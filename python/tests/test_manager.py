"""CheckpointManager: pushes in the background while a fake TF manager prunes files."""

import os
import threading
import time

import pytest

import mgreg
from mgreg import _push, manager as manager_lib
from conftest import copy_checkpoint


class FakeTFManager:
    """tf.train.CheckpointManager's file behaviour: save() writes model.ckpt-N and deletes
    the prefixes beyond max_to_keep at once."""

    def __init__(self, source, directory, max_to_keep, unique=False):
        self.source, self.directory, self.max_to_keep = source, directory, max_to_keep
        self.unique = unique  # flip a byte of the data file: content no test pushed
        self.saved = []
        self.save_counter = 0

    def save(self, checkpoint_number=None):
        self.save_counter += 1
        step = checkpoint_number or self.save_counter
        prefix = copy_checkpoint(self.source, self.directory, f"model.ckpt-{step}")
        if self.unique:
            path = prefix + ".data-00000-of-00001"
            raw = bytearray(open(path, "rb").read())
            raw[(step * 7919 + id(self)) % len(raw)] ^= 0xA5
            open(path, "wb").write(bytes(raw))
        self.saved.append(prefix)
        while len(self.saved) > self.max_to_keep:
            old = self.saved.pop(0)
            for name in os.listdir(self.directory):
                if name.startswith(os.path.basename(old) + "."):
                    os.unlink(os.path.join(self.directory, name))
        return prefix


@pytest.fixture
def throttle(monkeypatch):
    """Holds every PutFile until released, so pushes stay queued while TF prunes."""
    gate = threading.Event()

    def on_message(upload_id, name, offset):
        gate.wait(timeout=60)
    monkeypatch.setattr(_push, "_on_message", on_message)
    return gate


def test_pushes_are_queued_while_tf_prunes_and_all_land(client, data, model, tmp_path,
                                                        throttle):
    tf = FakeTFManager(data.tfx, str(tmp_path / "train"), max_to_keep=1, unique=True)
    mgr = mgreg.CheckpointManager(client, model, max_to_keep=3, max_pending=10)
    futures, spent = [], 0.0
    for step in range(1, 6):
        path = tf.save(checkpoint_number=step * 100)
        t0 = time.perf_counter()
        futures.append(mgr.push(path, metadata={"loss": 1.0 / step}))
        spent += time.perf_counter() - t0
    assert spent < 0.05 * 5, spent  # hard links only: milliseconds per save
    assert not futures[0].done()  # the first push is held by the throttle
    assert sorted(os.listdir(tmp_path / "train")) == [
        manager_lib.STAGING, "model.ckpt-500.data-00000-of-00001", "model.ckpt-500.index",
        "model.ckpt-500.meta"]  # TF kept one checkpoint
    throttle.set()
    mgr.wait_until_finished()
    assert [f.result().step for f in futures] == [100, 200, 300, 400, 500]
    assert client.list_steps(model) == [300, 400, 500]  # retention: max_to_keep=3
    assert client.get(model, 500).metadata == {"loss": "0.2"}
    assert client.model(model).max_to_keep == 3
    assert not os.listdir(tmp_path / "train" / manager_lib.STAGING)  # staging cleaned up
    mgr.close()


def test_a_full_queue_drops_the_oldest_queued_push(client, data, model, tmp_path, throttle):
    tf = FakeTFManager(data.tictactoe, str(tmp_path), max_to_keep=5, unique=True)
    with mgreg.CheckpointManager(client, model, max_pending=1) as mgr:
        running = mgr.push(tf.save(1))
        while mgr.pending != 1 or not running.running():
            time.sleep(0.001)  # polling the worker's state, not ordering by sleep
        queued = mgr.push(tf.save(2))
        last = mgr.push(tf.save(3))
        assert queued.cancelled() and mgr.dropped == 1
        throttle.set()
    assert running.result().step == 1 and last.result().step == 3
    assert client.list_steps(model) == [1, 3]


def test_errors_land_on_the_future_and_wait_until_finished_raises_the_first(
        client, data, model, tmp_path, monkeypatch):
    def fail(upload_id, name, offset):
        raise mgreg.ResourceExhaustedError("injected: disk full")
    monkeypatch.setattr(_push, "_on_message", fail)
    tf = FakeTFManager(data.tictactoe, str(tmp_path), max_to_keep=5, unique=True)
    mgr = mgreg.CheckpointManager(client, model, max_to_keep=2)
    f1 = mgr.push(tf.save(1))
    with pytest.raises(mgreg.ResourceExhaustedError, match="injected"):
        mgr.wait_until_finished()
    assert isinstance(f1.exception(), mgreg.ResourceExhaustedError)
    monkeypatch.setattr(_push, "_on_message", None)
    assert mgr.push(tf.save(2)).result(timeout=60).step == 2
    mgr.close()


def test_wrap_pushes_on_save_and_disabled_managers_do_nothing(client, data, model, tmp_path):
    tf = FakeTFManager(data.tictactoe, str(tmp_path), max_to_keep=2)
    wrapped = mgreg.wrap(tf, client, model)
    assert wrapped.save(7).endswith("model.ckpt-7")
    assert wrapped.max_to_keep == 2  # the rest is TF's manager
    wrapped.mgreg.close()
    assert client.list_steps(model) == [7]
    off = mgreg.CheckpointManager(client, model + "-off", enabled=False)
    assert off.push(tf.save(8)).result() is None
    off.close()
    assert client.latest(model + "-off") is None


def test_a_push_staged_by_a_dead_process_is_resumed(client, data, model, tmp_path):
    tf = FakeTFManager(data.tictactoe, str(tmp_path), max_to_keep=5)
    stage, _, step = manager_lib._stage(tf.save(9))
    with open(os.path.join(stage, "push.json"), "w", encoding="utf-8") as f:
        f.write('{"model": "%s", "step": 9, "metadata": {}, "upload_id": "gone"}' % model)
    with mgreg.CheckpointManager(client, model, directory=str(tmp_path)):
        pass
    assert client.list_steps(model) == [9]
    assert not os.path.exists(stage)


def test_raise_on_error_makes_the_next_push_raise(client, data, model, tmp_path, monkeypatch):
    def fail(upload_id, name, offset):
        raise mgreg.ResourceExhaustedError("injected: quota")
    monkeypatch.setattr(_push, "_on_message", fail)
    tf = FakeTFManager(data.tictactoe, str(tmp_path), max_to_keep=5, unique=True)
    mgr = mgreg.CheckpointManager(client, model, raise_on_error=True)
    assert isinstance(mgr.push(tf.save(1)).exception(timeout=60),
                      mgreg.ResourceExhaustedError)
    with pytest.raises(mgreg.ResourceExhaustedError, match="quota"):
        mgr.push(tf.save(2))
    with pytest.raises(mgreg.ResourceExhaustedError):
        mgr.close()
