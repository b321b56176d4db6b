"""Push (of a checkpoint prefix or a SavedModel directory), resume, chunk dedup and the
multi-writer upload (as client/push.cc)."""

import concurrent.futures
import logging
import os
import random
import time

import grpc

from . import _local, _saved_model, errors, types
from .v1 import registry_pb2

log = logging.getLogger("mgreg")

MESSAGE_BYTES = 1 << 20
MAX_RESUMES = 5
SAMPLE_STRIDE = 16
# Codes after which a PutFile is resumed from the bytes the server holds. UNKNOWN is what
# grpcio reports when the request iterator itself failed (e.g. a read error mid-file).
RESUMABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
             grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN)

# Test hook: called as _on_message(upload_id, name, offset) before each PutFile message.
_on_message = None


def _backoff(attempt, low=0.1, high=5.0):
    time.sleep(min(high, low * (2 ** attempt)) * (0.5 + random.random() / 2))


def file_name_of(path):
    """The checkpoint file name ("index", "meta", "data-00000-of-00002") of a local path."""
    base = os.path.basename(os.fspath(path))
    for suffix in (".index", ".meta"):
        if base.endswith(suffix) and len(base) > len(suffix):
            return suffix[1:]
    dot = base.rfind(".data-")
    if dot > 0 and _local.is_data_name(base[dot + 1:]):
        return base[dot + 1:]
    raise errors.InvalidArgumentError(
        f"'{path}' is not a checkpoint file: expected <prefix>.index, <prefix>.meta or "
        "<prefix>.data-NNNNN-of-MMMMM")


def _messages(upload_id, name, path, offset, size, chunks, chunk_bytes, sink):
    """PutFileRequests from `offset`: bytes, or existing_chunk for chunks the server holds."""
    header = registry_pb2.PutFileRequest.Header(upload_id=upload_id, name=name, offset=offset)
    pos = offset
    with open(path, "rb") as f:
        first = True
        while first or pos < size:
            if _on_message is not None:
                _on_message(upload_id, name, pos)
            msg = registry_pb2.PutFileRequest()
            if first:
                msg.header.CopyFrom(header)
                first = False
            chunk = pos // chunk_bytes if chunk_bytes and pos % chunk_bytes == 0 else -1
            if 0 <= chunk < len(chunks) and chunks[chunk]:
                n = min(chunk_bytes, size - pos)
                msg.existing_chunk = chunks[chunk]
                sink(pos + n, 0, n)
            else:
                want = min(size - pos, MESSAGE_BYTES)
                if chunk_bytes and chunks:
                    want = min(want, chunk_bytes - pos % chunk_bytes)
                f.seek(pos)
                msg.data = f.read(want)
                if len(msg.data) != want:
                    raise errors.FailedPreconditionError(
                        f"local file '{path}' shrank while it was being sent; the checkpoint "
                        "changed under the upload")
                n = want
                sink(pos + n, n, 0)
            pos += n
            yield msg


def _wait_not_writing(client, upload_id, name, resuming, seconds=10.0):
    """The upload's state of `name` once no stream writes it (a cut stream clears within
    milliseconds; resuming earlier is refused as "being written by another stream")."""
    deadline = time.monotonic() + seconds
    while True:
        # After a cut, wait for the channel to reconnect instead of failing fast.
        status = client._unary("GetUpload", registry_pb2.GetUploadRequest(upload_id=upload_id),
                               timeout=min(client.timeout, 10.0), wait_for_ready=resuming)
        state = next((f for f in status.files if f.file.name == name), None)
        if state is None or not state.writing or time.monotonic() > deadline:
            return state
        time.sleep(0.002)


def put_file(client, upload_id, name, path, *, chunks=(), chunk_bytes=0, on_progress=None,
             stats=None):
    """Sends local `path` as file `name` of an upload, from the bytes the server holds,
    resuming after a dropped stream (up to 5 times). Returns the PutFileResponse."""
    stats = stats if stats is not None else types.PushStats()
    attempt = 0
    probed = False
    while True:
        try:
            state = _wait_not_writing(client, upload_id, name, attempt > 0)
        except errors.MgregError as e:
            if e.code not in RESUMABLE or attempt >= MAX_RESUMES:
                raise
            attempt += 1
            _backoff(attempt - 1)
            continue
        local_size = os.path.getsize(path)
        if state is not None:
            size, offset = state.file.size, state.held_bytes
            if local_size != size:
                raise errors.FailedPreconditionError(
                    f"local file '{path}' has {local_size} bytes but the upload announced "
                    f"{size} for '{name}'; the file changed since the upload began")
            if offset == size and size > 0:
                if on_progress:
                    on_progress(size)
                return registry_pb2.PutFileResponse(held_bytes=size, complete=True)
        else:
            # Announce the file with a header-only stream first: the server may hold its
            # content already (then it is complete at once and no byte is sent), and
            # afterwards the upload's state says where to start.
            if probed:
                raise errors.InternalError(
                    f"the server did not add '{name}' to upload {upload_id} from its header")
            size, chunked = _local.digest_file(path)
            header = registry_pb2.PutFileRequest.Header(upload_id=upload_id, name=name,
                                                        offset=0, size=size,
                                                        chunked_sha256=chunked)
            try:
                client._stub.PutFile(iter([registry_pb2.PutFileRequest(header=header)]),
                                     metadata=client._metadata)
                probed = True
            except grpc.RpcError as e:
                # DATA_LOSS: "ended after 0 of N bytes": the file is now announced.
                if e.code() == grpc.StatusCode.DATA_LOSS:
                    probed = True
                elif e.code() not in RESUMABLE or attempt >= MAX_RESUMES:
                    raise client._error(e) from e
                else:
                    attempt += 1
                    _backoff(attempt - 1)
            continue

        def sink(done, sent, deduplicated):
            stats.bytes_sent += sent
            stats.bytes_deduplicated_chunks += deduplicated
            if on_progress:
                on_progress(done)

        failed = []

        def requests():
            try:
                yield from _messages(upload_id, name, path, offset, size, chunks,
                                     chunk_bytes, sink)
            except BaseException as e:  # grpcio reports only UNKNOWN; keep the reason
                failed.append(e)
                raise

        try:
            return client._stub.PutFile(requests(), metadata=client._metadata)
        except grpc.RpcError as e:
            local = failed[0] if failed else None
            if local is not None and not isinstance(local, ConnectionError):
                raise local from e  # a local problem (file changed, unreadable): no resume
            if e.code() not in RESUMABLE or attempt >= MAX_RESUMES:
                raise client._error(e) from e
            log.info("mgreg: PutFile of %s cut (%s); resuming", name, e.code().name)
            attempt += 1
            stats.resumes += 1
            _backoff(attempt - 1)


def _digest_all(paths):
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(8, len(paths)))) as ex:
        return list(ex.map(_local.digest_file, paths))


def _find_chunks(client, upload_id, digests):
    asked = [i for i, d in enumerate(digests) if d]
    if not asked:
        return [b""] * len(digests)
    r = client._unary("FindChunks", registry_pb2.FindChunksRequest(
        upload_id=upload_id, sha256=[digests[i] for i in asked]))
    held = [b""] * len(digests)
    for k, i in enumerate(asked):
        if k < len(r.present) and r.present[k]:
            held[i] = digests[i]
    return held


def _held_chunks(client, upload, paths):
    """Per file to send: the raw digests of its chunks the server holds (b"" = send)."""
    cb = upload.chunk_bytes
    out = {}
    for f in upload.files:
        if cb <= 0 or f.held_bytes != 0 or f.file.size <= cb:
            continue
        path = paths[f.file.name]
        # A sample first: hashing every chunk costs a second read of the file.
        if any(_find_chunks(client, upload.upload_id, _local.chunk_digests(path, cb,
                                                                           SAMPLE_STRIDE))):
            out[f.file.name] = _find_chunks(client, upload.upload_id,
                                            _local.chunk_digests(path, cb))
    return out


def _check_force(overwrite, force):
    if force and not overwrite:
        raise errors.InvalidArgumentError(
            "force=True only applies to overwrite=True (replacing a pinned or aliased "
            "step); add overwrite=True or drop force")


def _local_files(prefix):
    """(basename, step or None, kind, {name: path}) of a checkpoint prefix or a SavedModel
    version directory."""
    if os.path.isdir(prefix):
        if not _saved_model.is_saved_model_dir(prefix):
            raise FileNotFoundError(
                f"'{prefix}' is a directory but not a SavedModel: neither "
                f"'{os.path.join(prefix, _saved_model.SAVED_MODEL_PB)}' nor "
                f"'{os.path.join(prefix, _saved_model.SAVED_MODEL_PBTXT)}' exists; give a "
                "SavedModel version directory, or a checkpoint prefix such as "
                f"'{os.path.join(prefix, 'model.ckpt-1000')}' (its .index and .data-* files)")
        version, paths = _saved_model.find_files(prefix)
        return "", version, registry_pb2.SAVED_MODEL, paths
    _, basename, prefix_step, paths = _local.find_files(prefix)
    return basename, prefix_step, registry_pb2.CHECKPOINT, paths


def push(client, model, prefix, *, step, metadata, overwrite, dedup, progress, upload_id,
         on_begin=None, force=False):
    _check_force(overwrite, force)
    prefix = os.fspath(prefix)
    basename, prefix_step, kind, paths = _local_files(prefix)
    step = prefix_step if step is None else step
    if step is None and kind == registry_pb2.SAVED_MODEL:
        raise errors.InvalidArgumentError(
            f"SavedModel directory '{prefix}' is not named by a version number (as in "
            "/export/resnet/123); pass step=N")
    if step is None:
        raise errors.InvalidArgumentError(
            f"prefix '{prefix}' has no step (no -<number> at its end); pass step=N")
    if not isinstance(step, int) or step < 0:
        raise errors.InvalidArgumentError(f"step must be an int >= 0, not {step!r}")
    stats = types.PushStats()
    names = list(paths)
    digests = _digest_all([paths[n] for n in names])
    total = sum(size for size, _ in digests)
    manifest = [registry_pb2.FileInfo(name=n, size=s, chunked_sha256=h)
                for n, (s, h) in zip(names, digests)]
    for restart in range(2):
        try:
            return _push_once(client, model, step, basename, paths, manifest, total, stats,
                              kind=kind, metadata=metadata, overwrite=overwrite,
                              force=force, dedup=dedup,
                              progress=progress, upload_id=upload_id, on_begin=on_begin)
        except errors.NotFoundError as e:
            if restart or "upload" not in e.message.lower():
                raise
            log.info("mgreg: upload of %s step %d is gone (%s); starting over", model, step,
                     e.message)
            upload_id = None
            stats.restarts += 1
    raise AssertionError("unreachable")


def _push_once(client, model, step, basename, paths, manifest, total, stats, *, kind,
               metadata, overwrite, force, dedup, progress, upload_id, on_begin):
    upload = None
    if upload_id:
        try:
            upload = client._unary("GetUpload", registry_pb2.GetUploadRequest(
                upload_id=upload_id))
            if (upload.model, upload.step) != (model, step) or \
                    sorted((f.file.name, f.file.chunked_sha256) for f in upload.files) != \
                    sorted((m.name, m.chunked_sha256) for m in manifest):
                log.info("mgreg: upload %s is for other content; starting a new one", upload_id)
                upload = None
        except errors.NotFoundError:
            log.info("mgreg: upload %s expired; starting over", upload_id)
    if upload is None:
        upload = client._unary("BeginUpload", registry_pb2.BeginUploadRequest(
            model=model, step=step, basename=basename, files=manifest, overwrite=overwrite,
            force=force, kind=kind,
            metadata={str(k): str(v) for k, v in (metadata or {}).items()}))
    if on_begin is not None:
        on_begin(upload.upload_id)
    bar = client._progress(progress, total, f"push {model}@{step}")
    try:
        done = 0
        to_send = []
        for f in upload.files:
            if f.held_bytes == f.file.size:
                done += f.file.size
                stats.bytes_deduplicated_files += f.file.size
            else:
                to_send.append(f)
        bar.update_to(done)
        held = _held_chunks(client, upload, paths) if dedup and to_send else {}
        for f in to_send:
            base = done
            try:
                put_file(client, upload.upload_id, f.file.name, paths[f.file.name],
                         chunks=held.get(f.file.name, ()), chunk_bytes=upload.chunk_bytes,
                         on_progress=lambda d, base=base: bar.update_to(base + d), stats=stats)
            except errors.MgregError as e:
                if e.code not in RESUMABLE:
                    _abort_quietly(client, upload.upload_id)
                raise
            done += f.file.size
        try:
            committed = client._unary("CommitUpload", registry_pb2.CommitUploadRequest(
                upload_id=upload.upload_id))
        except errors.FailedPreconditionError:
            _abort_quietly(client, upload.upload_id)
            raise
        bar.update_to(total)
    finally:
        bar.close()
        client.last_push_stats = stats
    return types.Checkpoint.from_proto(committed)


def _abort_quietly(client, upload_id):
    try:
        client._unary("AbortUpload", registry_pb2.AbortUploadRequest(upload_id=upload_id))
    except errors.MgregError as e:
        log.warning("mgreg: could not abort upload %s: %s", upload_id, e)


def begin_upload(client, model, step, *, basename, files, metadata, overwrite, force=False,
                 saved_model=None):
    _check_force(overwrite, force)
    manifest = []
    kind = registry_pb2.CHECKPOINT
    if saved_model is not None:
        if basename or files:
            raise errors.InvalidArgumentError(
                "a SavedModel upload takes its files from saved_model=DIR: give no basename "
                "and no files")
        kind = registry_pb2.SAVED_MODEL
        _, paths = _saved_model.find_files(saved_model)
        named = list(paths.items())
    else:
        named = [(file_name_of(path), path) for path in files or ()]
    for name, path in named:
        size, chunked = _local.digest_file(path)
        manifest.append(registry_pb2.FileInfo(name=name, size=size, chunked_sha256=chunked))
    upload = client._unary("BeginUpload", registry_pb2.BeginUploadRequest(
        model=model, step=step, basename=basename or "", files=manifest, overwrite=overwrite,
        force=force, kind=kind,
        metadata={str(k): str(v) for k, v in (metadata or {}).items()}))
    return UploadSession(client, upload.upload_id, owner=True)


class UploadSession:
    """An open upload: `id` (hand it to workers), put(path), status(), commit(), abort().

    The chief's session (from begin_upload) aborts the upload when a `with` block exits
    with an exception; a worker's (Client.upload(id)) never does."""

    def __init__(self, client, upload_id, owner):
        self._client = client
        self.id = upload_id
        self._owner = owner
        self.stats = types.PushStats()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and self._owner:
            _abort_quietly(self._client, self.id)

    def put(self, path, *, name=None, progress=None):
        """Sends a local checkpoint file (its name comes from the path's suffix; a
        SavedModel's file needs name=, its path inside the version directory, e.g.
        "variables/variables.index"), resuming at the bytes the server holds. Returns True
        once the file is complete."""
        name = name or file_name_of(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no file '{path}' to put into upload {self.id}")
        size = os.path.getsize(path)
        bar = self._client._progress(progress, size, f"put {name}")
        try:
            r = put_file(self._client, self.id, name, path, on_progress=bar.update_to,
                         stats=self.stats)
        finally:
            bar.close()
        return r.complete

    def status(self):
        """The upload's files and the bytes the server holds of each (UploadStatus)."""
        return types.UploadStatus.from_proto(self._client._unary(
            "GetUpload", registry_pb2.GetUploadRequest(upload_id=self.id)))

    def commit(self, wait=None):
        """Makes the step visible whole; returns the Checkpoint. FailedPreconditionError
        names the files still missing. wait=S first polls status() for up to S seconds
        until every file is complete and none is being written."""
        if wait:
            deadline = time.monotonic() + wait
            while self.status().missing and time.monotonic() < deadline:
                time.sleep(0.05)
        return types.Checkpoint.from_proto(self._client._unary(
            "CommitUpload", registry_pb2.CommitUploadRequest(upload_id=self.id)))

    def abort(self):
        """Drops the upload and the bytes only it referenced."""
        self._client._unary("AbortUpload", registry_pb2.AbortUploadRequest(upload_id=self.id))
