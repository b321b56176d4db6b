"""Watch: an iterator of registry events that reconnects and resumes from its revision."""

import logging
import random
import threading

import grpc

from . import errors, types
from .v1 import registry_pb2

log = logging.getLogger("mgreg")

MIN_BACKOFF, MAX_BACKOFF = 0.1, 10.0
_RECONNECT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)


class Watch:
    """Iterate it for Events; `revision` is the last revision seen, `live` turns True once
    the backlog is delivered. When the server goes away (UNAVAILABLE, or CANCELLED by a
    server shutting down) it reconnects with 0.1-10 s backoff from `revision`, so nothing
    is missed or repeated while that revision is within the server's window (else
    OutOfRangeError). cancel() ends the iteration from any thread; it is also a context
    manager."""

    def __init__(self, client, *, model, prefix, all_models, since_revision, reconnect,
                 include_progress):
        if sum(bool(x) for x in (model, prefix, all_models)) != 1:
            raise errors.InvalidArgumentError(
                "watch exactly one of: a model, prefix=..., or all_models=True")
        self._client = client
        self._request = registry_pb2.WatchCheckpointsRequest(
            model=model or "", prefix=prefix or "", all_models=bool(all_models))
        self.revision = since_revision
        self.live = False
        self.reconnects = 0
        self._reconnect = reconnect
        self._include_progress = include_progress
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._call = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cancel()

    def cancel(self):
        """Ends the iteration (the iterator stops without an exception)."""
        self._cancelled.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()

    @property
    def cancelled(self):
        return self._cancelled.is_set()

    def __iter__(self):
        return self._events()

    def _events(self):
        backoff = MIN_BACKOFF
        while not self._cancelled.is_set():
            self._request.since_revision = self.revision
            with self._lock:
                self._call = self._client._stream("WatchCheckpoints", self._request)
            try:
                for e in self._call:
                    backoff = MIN_BACKOFF
                    if e.revision > self.revision or self.revision < 0:
                        self.revision = e.revision
                    if e.type == registry_pb2.WatchEvent.PROGRESS:
                        self.live = True
                        if not self._include_progress:
                            continue
                    yield types.Event.from_proto(e)
                    if self._cancelled.is_set():
                        return
                if self._cancelled.is_set():
                    return
                # The server ended the stream cleanly (shutting down): reconnect.
                code, error = grpc.StatusCode.UNAVAILABLE, None
            except grpc.RpcError as e:
                if self._cancelled.is_set():
                    return
                code, error = e.code(), e
            # A server shutting down cancels its watches (CANCELLED, not by us) or drops
            # the connection (UNAVAILABLE): both mean "reconnect".
            if code not in _RECONNECT or not self._reconnect:
                if error is None:
                    return
                raise self._client._error(error) from error
            self.live = False
            self.reconnects += 1
            log.info("mgreg: watch lost the server (%s); reconnecting from revision %d",
                     code.name, self.revision)
            if self._cancelled.wait(backoff * (0.5 + random.random() / 2)):
                return
            backoff = min(MAX_BACKOFF, backoff * 2)
