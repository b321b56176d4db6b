"""mgreg.Client: the registry over gRPC, with tf.train's vocabulary.

A Client is thread-safe (one gRPC channel shared by every call) and a context manager.
Every failed call raises an mgreg.errors exception carrying the server's code and message.
"""

import os

import grpc

from . import _graph, _push, _restore, errors, progress as progress_lib, types
from .v1 import registry_pb2, registry_pb2_grpc
from .watch import Watch

DEFAULT_SERVER = "127.0.0.1:8470"


def _pem(value, what):
    """PEM bytes from a path or from PEM bytes/str; None stays None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    text = os.fspath(value)
    if "-----BEGIN" in text:
        return text.encode()
    try:
        with open(text, "rb") as f:
            return f.read()
    except OSError as e:
        raise errors.InvalidArgumentError(
            f"cannot read the {what} file '{text}' ({e.strerror}); give a PEM file's path "
            "or its PEM bytes") from e


def _health_request(service):
    # grpc.health.v1.HealthCheckRequest { string service = 1; }
    data = service.encode()
    return b"\x0a" + _varint(len(data)) + data if data else b""


def _varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


_HEALTH_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _health_response(data):
    # grpc.health.v1.HealthCheckResponse { ServingStatus status = 1; }: b"\x08\x01" = SERVING
    if len(data) >= 2 and data[0] == 0x08:
        return _HEALTH_STATUS.get(data[1], str(data[1]))
    return "UNKNOWN"


class Client:
    """A connection to an mgreg server.

    server: "host:port", default $MGREG_SERVER, else 127.0.0.1:8470 (as the CLI).
    token: bearer token, default $MGREG_TOKEN; sent as `authorization: Bearer ...`.
    tls: connect with TLS (system roots unless ca_cert); ca_cert, cert, key: a path or PEM
    bytes (cert and key present a client certificate: mutual TLS). ca_cert or cert imply
    tls. timeout: seconds for unary calls (streams have none). progress, tqdm_class: the
    default progress reporting of push and restore (see mgreg.progress).
    """

    def __init__(self, server=None, *, token=None, tls=False, ca_cert=None, cert=None,
                 key=None, timeout=60.0, max_message_bytes=16 << 20, progress=None,
                 tqdm_class=None):
        self.server = server or os.environ.get("MGREG_SERVER") or DEFAULT_SERVER
        token = token if token is not None else os.environ.get("MGREG_TOKEN", "")
        if (cert is None) != (key is None):
            raise errors.InvalidArgumentError(
                "give both cert and key for a client certificate (mutual TLS), or neither")
        # Keepalive pings during calls, as the C++ client (the server accepts one per 10 s).
        options = [("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.keepalive_time_ms", 60000), ("grpc.keepalive_timeout_ms", 20000),
                   ("grpc.http2.max_pings_without_data", 0)]
        if tls or ca_cert is not None or cert is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_pem(ca_cert, "ca_cert"), private_key=_pem(key, "key"),
                certificate_chain=_pem(cert, "cert"))
            self._channel = grpc.secure_channel(self.server, credentials, options)
        else:
            self._channel = grpc.insecure_channel(self.server, options)
        self._stub = registry_pb2_grpc.RegistryStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout
        self.progress = progress
        self.tqdm_class = tqdm_class
        self.last_push_stats = types.PushStats()

    # --- plumbing -------------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def _error(self, e):
        return errors.from_rpc_error(e, f"cannot reach the mgreg server at {self.server}")

    def _unary(self, method, request, timeout=None, wait_for_ready=None):
        try:
            return getattr(self._stub, method)(request, timeout=timeout or self.timeout,
                                                metadata=self._metadata,
                                                wait_for_ready=wait_for_ready)
        except grpc.RpcError as e:
            raise self._error(e) from e

    def _stream(self, method, request_or_iterator, timeout=None):
        """A streaming call: returns the call object (iterate it / read the future)."""
        return getattr(self._stub, method)(request_or_iterator, timeout=timeout,
                                           metadata=self._metadata)

    def _progress(self, progress, total, desc):
        if progress is None:
            progress = self.progress
        return progress_lib.make(progress, total, desc, self.tqdm_class)

    # --- writes ---------------------------------------------------------------------------
    def push(self, model, prefix, *, step=None, metadata=None, overwrite=False, force=False,
             dedup=True, progress=None, upload_id=None):
        """Uploads the checkpoint TensorFlow saved at `prefix` (what Saver.save or
        CheckpointManager.save returned) as (model, step) and commits it; returns the
        Checkpoint. The step defaults to the prefix's `-N`. `prefix` may also be a
        SavedModel version directory (what tf.saved_model.save wrote, e.g.
        /export/resnet/123): every file of it is pushed as one step of kind "saved_model",
        the step defaulting to the directory's number. Files and chunks the server
        holds are not sent; a dropped stream resumes. Identical content again is a no-op;
        different content raises AlreadyExistsError unless overwrite=True; overwriting a
        pinned or aliased step raises FailedPreconditionError unless force=True too.
        upload_id resumes an upload an earlier process began. `last_push_stats` tells what
        was sent."""
        return _push.push(self, model, prefix, step=step, metadata=metadata,
                          overwrite=overwrite, force=force, dedup=dedup, progress=progress,
                          upload_id=upload_id)

    def begin_upload(self, model, step, *, basename=None, files=None, metadata=None,
                     overwrite=False, force=False, saved_model=None):
        """Opens a multi-writer upload; returns an UploadSession whose `.id` the chief
        hands to its workers (they call `client.upload(id).put(path)`). `files` (local
        paths) form the manifest; without them the upload learns each file from its
        writer. saved_model=DIR instead announces every file of that SavedModel version
        directory (workers put them with name=<path inside DIR>). Leaving
        `with begin_upload(...)` on an exception aborts the upload."""
        return _push.begin_upload(self, model, step, basename=basename, files=files,
                                  metadata=metadata, overwrite=overwrite, force=force,
                                  saved_model=saved_model)

    def upload(self, upload_id):
        """A handle on an open upload (a worker's); it never aborts the upload."""
        return _push.UploadSession(self, upload_id, owner=False)

    def delete(self, model, step):
        """Deletes one step; returns the bytes freed (those nothing else references)."""
        return self._unary("DeleteCheckpoint", registry_pb2.DeleteCheckpointRequest(
            model=model, step=step)).freed_bytes

    def set_alias(self, model, alias, step):
        """Points `alias` ("production") at a step, or moves it; returns the Model."""
        return types.Model.from_proto(self._unary("SetAlias", registry_pb2.SetAliasRequest(
            model=model, alias=alias, step=step)))

    def remove_alias(self, model, alias):
        return types.Model.from_proto(self._unary(
            "RemoveAlias", registry_pb2.RemoveAliasRequest(model=model, alias=alias)))

    def pin(self, model, step, pinned=True):
        """Protects a step from retention (pinned=False removes it); returns the step."""
        return types.Checkpoint.from_proto(self._unary(
            "PinCheckpoint", registry_pb2.PinCheckpointRequest(model=model, step=step,
                                                                pinned=pinned)))

    def set_retention(self, model, max_to_keep=0, keep_checkpoint_every_n_hours=0,
                      allow_missing=False):
        """TensorFlow CheckpointManager's retention, applied by the server after every
        commit and now (0 = keep all / none kept forever); returns the Model. A model the
        server knows nothing of raises NotFoundError unless allow_missing (a policy set
        before the model's first push)."""
        return types.Model.from_proto(self._unary("SetRetention", registry_pb2.SetRetentionRequest(
            model=model, retention=registry_pb2.RetentionPolicy(
                max_to_keep=max_to_keep, keep_every_n_hours=keep_checkpoint_every_n_hours),
            allow_missing=allow_missing)))

    # --- reads ----------------------------------------------------------------------------
    def latest(self, model):
        """The newest committed step as a Checkpoint, or None if the model has none."""
        try:
            return types.Checkpoint.from_proto(self._unary(
                "GetLatestCheckpoint", registry_pb2.GetLatestCheckpointRequest(model=model)))
        except errors.NotFoundError:
            return None

    def latest_step(self, model):
        """The newest committed step number, or None (orbax's latest_step())."""
        c = self.latest(model)
        return None if c is None else c.step

    def get(self, model, step=None, *, alias=None):
        """One step (the latest when neither step nor alias is given)."""
        return types.Checkpoint.from_proto(self._get_proto(model, step, alias))

    def _get_proto(self, model, step, alias):
        if step is not None and alias is not None:
            raise errors.InvalidArgumentError("give step or alias, not both")
        if step is None and alias is None:
            return self._unary("GetLatestCheckpoint",
                               registry_pb2.GetLatestCheckpointRequest(model=model))
        return self._unary("GetCheckpoint", registry_pb2.GetCheckpointRequest(
            model=model, step=step or 0, alias=alias or ""))

    def list_models(self, page_size=100):
        """Every model with a committed step (ModelSummary), in name order; follows pages."""
        token = ""
        while True:
            r = self._unary("ListModels", registry_pb2.ListModelsRequest(
                page_size=page_size, page_token=token))
            for m in r.models:
                yield types.ModelSummary(m.name, m.latest_step, m.checkpoint_count)
            token = r.next_page_token
            if not token:
                return

    def list_checkpoints(self, model, page_size=100):
        """Every committed step of a model (Checkpoint), ascending; follows pages."""
        token = ""
        while True:
            r = self._unary("ListCheckpoints", registry_pb2.ListCheckpointsRequest(
                model=model, page_size=page_size, page_token=token))
            for c in r.checkpoints:
                yield types.Checkpoint.from_proto(c)
            token = r.next_page_token
            if not token:
                return

    def list_steps(self, model):
        """The committed steps of a model, ascending (orbax's all_steps())."""
        return [c.step for c in self.list_checkpoints(model)]

    def model(self, model):
        """A model's settings: retention, aliases, counts."""
        return types.Model.from_proto(self._unary("GetModel",
                                                  registry_pb2.GetModelRequest(model=model)))

    def state(self, model):
        """TensorFlow's CheckpointState of a model, as CheckpointManager writes it (a
        protobuf; text_format.MessageToString gives the `checkpoint` file's text)."""
        return self._unary("GetCheckpointState",
                           registry_pb2.GetCheckpointStateRequest(model=model))

    def list_variables(self, model, step=None, *, alias=None, verify=False):
        """[(name, shape)] of a checkpoint's tensors, like tf.train.list_variables. With
        verify=True every tensor's CRC32C is checked; a mismatch raises DataLossError."""
        return [(t.name, list(t.shape)) for t in
                self.inspect(model, step, alias=alias, verify=verify)]

    def inspect(self, model, step=None, *, alias=None, verify=False):
        """The tensors of a checkpoint (TensorInfo: dtype, shape, shard, offset, size)."""
        request = registry_pb2.InspectCheckpointRequest(model=model, alias=alias or "",
                                                        verify=verify)
        if step is not None:
            request.step = step
        r = self._unary("InspectCheckpoint", request)
        out = [types.TensorInfo(t.name, t.dtype, tuple(t.shape), t.shard, t.offset, t.size,
                                t.verification) for t in r.tensors]
        if verify and not r.verified:
            bad = [f"{t.name}: {t.verification}" for t in out if t.verification != "ok"]
            raise errors.DataLossError(
                f"checkpoint {model} step {r.step} failed verification: " + "; ".join(bad))
        return out

    def graph(self, model, step=None, *, alias=None, filename=None, **options):
        """The MetaGraphDef of a step as bytes, ready for tf.train.import_meta_graph
        (MetaGraphDef.FromString), with export_meta_graph's options applied by the server:
        collection_list, export_scope, clear_devices, strip_default_attrs,
        clear_extraneous_savers, unbound_inputs_col_name, as_text. For a SavedModel step,
        tags=[...] chooses its MetaGraphDef (default: the only one); with no option at all
        its stored saved_model.pb comes back verbatim. `filename` also writes the bytes
        there atomically. Size and SHA-256 are verified."""
        return _graph.fetch(self, model, step, alias, options, filename)

    def collection(self, model, key, step=None, *, alias=None, tags=None):
        """One collection of the stored graph as a list, equal to `mgreg collection --json`'s
        values (registered protos as dicts, also of the kinds the server's config
        registers; other bytes as text or base64). For a SavedModel step, tags=[...]
        chooses the MetaGraphDef (default: the only one)."""
        return _graph.collection(self, model, key, step, alias, tags)

    def restore(self, model, directory, step=None, *, alias=None, keep_last=0, progress=None,
                **graph_options):
        """Writes the step's files into `directory` and switches its `checkpoint` file, so
        tf.train.latest_checkpoint(directory) returns the prefix this returns. Graph
        options (as graph()) filter the written .meta. Files already there with the right
        SHA-256 are kept; each download is verified before it is renamed into place.
        keep_last keeps that many listed checkpoints (0: all).

        A SavedModel step is restored as restore_saved_model() does, `directory` being
        TF Serving's base path; it returns the version directory."""
        return _restore.restore(self, model, directory, step, alias=alias,
                                keep_last=keep_last, progress=progress,
                                graph_options=graph_options)

    def restore_saved_model(self, model, base, step=None, *, alias=None, keep=0,
                            remove_newer=False, progress=None):
        """Writes SavedModel step (model, step / alias / latest) as TF Serving's version
        directory base/<step>/ and returns its path: every file downloaded into a hidden
        staging directory in `base`, verified by SHA-256 and fsynced (files and
        directories), then renamed into place whole, so TF Serving never sees a half-written
        version. Names the server answers are checked before anything is written. keep=K
        then keeps this version and the newest K-1 others (0: all); remove_newer=True also
        removes versions above this one (TF Serving serves the highest). A version already
        there with exactly these files is left as is. FailedPreconditionError for a
        checkpoint step."""
        return _restore.restore(self, model, base, step, alias=alias, keep_last=keep,
                                progress=progress, graph_options={},
                                remove_newer=remove_newer, saved_model_only=True)

    def watch(self, model=None, *, prefix=None, all_models=False, since_revision=-1,
              reconnect=True, include_progress=False):
        """An iterator of Events (COMMITTED, DELETED, ALIAS_SET, ALIAS_REMOVED) of a model,
        a name prefix or all models, after `since_revision` (-1: new events only, 0: all
        retained). Reconnects and resumes from its last revision when the server goes
        away; `cancel()` from any thread ends it."""
        return Watch(self, model=model, prefix=prefix, all_models=all_models,
                     since_revision=since_revision, reconnect=reconnect,
                     include_progress=include_progress)

    def health(self, service=""):
        """The server's grpc.health.v1 status: "SERVING", "NOT_SERVING", ..."""
        check = self._channel.unary_unary("/grpc.health.v1.Health/Check",
                                          request_serializer=_health_request,
                                          response_deserializer=_health_response)
        try:
            return check(service, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise self._error(e) from e
