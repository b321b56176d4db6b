"""CheckpointManager: push checkpoints from a training loop without slowing it.

push(prefix) hard-links the checkpoint's files into `<dir>/.mgreg-staging/` (so
TensorFlow's own max_to_keep can delete the originals while the push is queued), then
returns a concurrent.futures.Future at once; one daemon thread uploads the queue in order.
"""

import collections
import concurrent.futures
import errno
import itertools
import json
import logging
import os
import shutil
import threading

from . import _local, _push

log = logging.getLogger("mgreg")

STAGING = ".mgreg-staging"
_ON_FULL = ("drop_oldest", "block", "skip_new")
_counter = itertools.count()


def _stage(prefix):
    """Hard-links (or, across devices, copies) a checkpoint's files into a staging dir.

    Returns (staging dir, staged prefix, step)."""
    directory, basename, step, files = _local.find_files(prefix)
    name = f"{basename}-{step}" if step is not None else basename
    stage = os.path.join(directory, STAGING, f"{name}.{os.getpid()}.{next(_counter)}")
    os.makedirs(stage)
    try:
        for suffix, path in files.items():
            target = os.path.join(stage, f"{name}.{suffix}")
            try:
                os.link(path, target)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                log.warning("mgreg: cannot hard-link %s (%s); copying it, so a checkpoint "
                            "pruned during the copy can still fail its push", path, e.strerror)
                shutil.copy2(path, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return stage, os.path.join(stage, name), step


class CheckpointManager:
    """Pushes checkpoints of `model` in a background thread.

    max_to_keep / keep_checkpoint_every_n_hours: the model's retention on the server
    (tf.train.CheckpointManager's semantics), set before the first push when given.
    max_pending: pushes queued at most (not counting the one running); on_full decides
    what a push into a full queue does: "drop_oldest" (default: the oldest queued push is
    cancelled and counted in `dropped`), "block" (wait for room) or "skip_new".
    enabled=False (e.g. on non-chief workers) makes push() a no-op. Errors land on the
    push's Future and in the log; wait_until_finished() raises the first; with
    raise_on_error=True the next push() raises it too. `directory`: resume the pushes a
    previous process left staged there (with their upload ids) when this one starts.
    """

    def __init__(self, client, model, *, max_to_keep=None, keep_checkpoint_every_n_hours=None,
                 max_pending=2, on_full="drop_oldest", enabled=True, raise_on_error=False,
                 metadata=None, directory=None):
        if on_full not in _ON_FULL:
            raise ValueError(f"on_full must be one of {_ON_FULL}, not {on_full!r}")
        if max_pending < 1:
            raise ValueError("max_pending must be >= 1")
        self.client, self.model = client, model
        self.enabled = enabled
        self.max_pending, self.on_full = max_pending, on_full
        self.raise_on_error = raise_on_error
        self.metadata = dict(metadata or {})
        self.dropped = 0
        self.pushed = []  # Checkpoints pushed, in order
        self._retention = None
        if max_to_keep is not None or keep_checkpoint_every_n_hours is not None:
            self._retention = (max_to_keep or 0, keep_checkpoint_every_n_hours or 0)
        self._queue = collections.deque()
        self._cond = threading.Condition()
        self._running = None
        self._errors = []
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=f"mgreg-push-{model}",
                                        daemon=True)
        self._thread.start()
        if directory is not None and enabled:
            self._resume_staged(directory)

    # --- caller side ----------------------------------------------------------------------
    def push(self, prefix, *, step=None, metadata=None):
        """Stages the checkpoint at `prefix` (milliseconds) and queues its upload; returns a
        Future whose result is the pushed Checkpoint."""
        future = concurrent.futures.Future()
        if not self.enabled:
            future.set_result(None)
            return future
        if self.raise_on_error:
            with self._cond:
                if self._errors:
                    raise self._errors[0]
        stage, staged_prefix, prefix_step = _stage(prefix)
        meta = dict(self.metadata, **{str(k): str(v) for k, v in (metadata or {}).items()})
        item = {"future": future, "stage": stage, "prefix": staged_prefix,
                "step": prefix_step if step is None else step, "metadata": meta,
                "upload_id": None}
        self._write_record(item)
        with self._cond:
            if self._closed:
                shutil.rmtree(stage, ignore_errors=True)
                raise RuntimeError("this CheckpointManager is closed")
            while len(self._queue) >= self.max_pending:
                if self.on_full == "block":
                    self._cond.wait()
                    continue
                self.dropped += 1
                victim = self._queue.popleft() if self.on_full == "drop_oldest" else item
                log.warning("mgreg: push queue of %s full (%d); dropping step %s", self.model,
                            self.max_pending, victim["step"])
                victim["future"].cancel()
                shutil.rmtree(victim["stage"], ignore_errors=True)
                if victim is item:
                    return future
            self._queue.append(item)
            self._cond.notify_all()
        return future

    def wait_until_finished(self):
        """Blocks until every queued push is done; raises the first error since the last
        call (later ones are in the log and on their Futures)."""
        with self._cond:
            while self._queue or self._running is not None:
                self._cond.wait()
            if self._errors:
                first, self._errors = self._errors[0], []
                raise first

    def close(self):
        """Finishes the queued pushes (raising the first error) and stops the thread."""
        try:
            self.wait_until_finished()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            try:
                self.close()
            except Exception:  # pylint: disable=broad-except
                log.exception("mgreg: a push failed while the caller was already failing")

    @property
    def pending(self):
        with self._cond:
            return len(self._queue) + (self._running is not None)

    # --- worker side ----------------------------------------------------------------------
    def _write_record(self, item):
        record = {k: item[k] for k in ("step", "metadata", "upload_id")}
        record["model"] = self.model
        tmp = os.path.join(item["stage"], "push.json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(tmp, os.path.join(item["stage"], "push.json"))

    def _resume_staged(self, directory):
        root = os.path.join(directory, STAGING)
        try:
            names = sorted(os.listdir(root))
        except FileNotFoundError:
            return
        for name in names:
            stage = os.path.join(root, name)
            try:
                with open(os.path.join(stage, "push.json"), encoding="utf-8") as f:
                    record = json.load(f)
            except (OSError, ValueError):
                continue
            if record.get("model") != self.model:
                continue
            prefix = os.path.join(stage, name.rsplit(".", 2)[0])
            log.info("mgreg: resuming the push of %s staged by an earlier process", prefix)
            with self._cond:
                self._queue.append({"future": concurrent.futures.Future(), "stage": stage,
                                    "prefix": prefix, "step": record["step"],
                                    "metadata": record["metadata"],
                                    "upload_id": record.get("upload_id")})
                self._cond.notify_all()

    def _work(self):
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                item = self._running = self._queue.popleft()
                self._cond.notify_all()
            future = item["future"]
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(self._push(item))
                except BaseException as e:  # pylint: disable=broad-except
                    log.error("mgreg: push of %s step %s failed: %s", self.model, item["step"],
                              e)
                    with self._cond:
                        self._errors.append(e)
                    future.set_exception(e)
            shutil.rmtree(item["stage"], ignore_errors=True)
            with self._cond:
                self._running = None
                self._cond.notify_all()

    def _push(self, item):
        if self._retention is not None:
            # Before the model's first push, too.
            self.client.set_retention(self.model, *self._retention, allow_missing=True)
            self._retention = None

        def remember(upload_id):
            item["upload_id"] = upload_id
            self._write_record(item)

        checkpoint = _push.push(self.client, self.model, item["prefix"], step=item["step"],
                                metadata=item["metadata"], overwrite=False, dedup=True,
                                progress=False, upload_id=item["upload_id"],
                                on_begin=remember)
        self.pushed.append(checkpoint)
        return checkpoint


class _Wrapped:
    """A tf.train.CheckpointManager whose save() also pushes (see wrap())."""

    def __init__(self, tf_manager, manager):
        self._tf_manager = tf_manager
        self.mgreg = manager

    def save(self, *args, **kwargs):
        path = self._tf_manager.save(*args, **kwargs)
        if path is not None:
            self.mgreg.push(path)
        return path

    def __getattr__(self, name):
        return getattr(self._tf_manager, name)


def wrap(tf_manager, client, model, **kwargs):
    """Wraps a tf.train.CheckpointManager so that its save() also pushes the checkpoint
    (through a mgreg.CheckpointManager built with **kwargs, available as `.mgreg`)."""
    return _Wrapped(tf_manager, CheckpointManager(client, model, **kwargs))
