"""Push (of a checkpoint prefix or a SavedModel directory), resume, chunk dedup and the
multi-writer upload (as client/push.cc)."""

import concurrent.futures
import hashlib
import itertools
import logging
import os
import random
import time

import grpc

from . import _local, _pieces, _saved_model, errors, types
from .v1 import registry_pb2

log = logging.getLogger("mgreg")

MESSAGE_BYTES = 1 << 20
PIECE_BYTES = _pieces.PIECE_BYTES
# Pieces asked in one FindChunks while sending. One window is sent while the next is
# read and hashed: at most two windows (32 MiB) of a file are in memory.
WINDOW_PIECES = 16
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


def _has_digest(info):
    return bool(info.chunked_sha256 or info.sha256)


def _messages(client, upload_id, name, path, offset, size, header, *, chunk_bytes, find,
              chunks, sink):
    """The PutFileRequests of `path` from `offset`, the file read once: every 1 MiB piece
    is read and hashed (on every core, ahead of the sender), those before `offset` only
    for the digest. A piece is sent as existing_chunk when the server holds it (`find`:
    FindChunks per window of WINDOW_PIECES, when its chunks are the 1 MiB pieces), or
    `chunks[k]` names chunk k (precomputed for other chunk sizes), else as data. The last
    message carries final_chunked_sha256, the file's chunked SHA-256."""
    outer = hashlib.sha256()
    pending = []  # the one message built but not yet handed on: the last gets the digest
    pos = offset

    def release():
        msg, at, sent, deduplicated = pending.pop()
        if _on_message is not None:
            _on_message(upload_id, name, at)
        sink(at + sent + deduplicated, sent, deduplicated)
        return msg

    def build(**fields):
        msg = registry_pb2.PutFileRequest(**fields)
        if not pending and pos == offset:
            msg.header.CopyFrom(header)
        return msg

    with _pieces.PieceReader(path, size, ahead=WINDOW_PIECES) as reader:
        it = reader.pieces()
        while True:
            window = list(itertools.islice(it, WINDOW_PIECES))
            if not window:
                break
            for piece in window:
                outer.update(piece.sha256)
            held = set()
            if find and window[-1].end > pos:
                asked = [p.sha256 for p in window if p.offset >= pos]
                held = {d for d, present in zip(asked, _find_chunks(client, upload_id, asked))
                        if present}
            for piece in window:
                while pos < piece.end:
                    chunk = pos // chunk_bytes if chunks and pos % chunk_bytes == 0 else -1
                    if piece.offset == pos and piece.sha256 in held:
                        existing, n = piece.sha256, len(piece.data)
                    elif 0 <= chunk < len(chunks) and chunks[chunk]:
                        existing, n = chunks[chunk], min(chunk_bytes, size - pos)
                    else:
                        existing = None
                        n = min(piece.end - pos, MESSAGE_BYTES)
                        if chunks:  # stop at the next chunk boundary
                            n = min(n, chunk_bytes - pos % chunk_bytes)
                    if pending:
                        yield release()
                    if existing is not None:
                        pending.append((build(existing_chunk=existing), pos, 0, n))
                    else:
                        data = piece.data[pos - piece.offset:pos - piece.offset + n]
                        pending.append((build(data=data), pos, n, 0))
                    pos += n
    if not pending:  # every byte held already: a message with the digest only
        pending.append((build(), pos, 0, 0))
    pending[0][0].final_chunked_sha256 = outer.hexdigest()
    yield release()


def _wait_not_writing(client, upload_id, name, resuming, seconds=10.0):
    """(Upload, its UploadFile `name` or None) once no stream writes it (a cut stream
    clears within milliseconds; resuming earlier is refused as "being written by another
    stream")."""
    deadline = time.monotonic() + seconds
    while True:
        # After a cut, wait for the channel to reconnect instead of failing fast.
        upload = client._unary("GetUpload", registry_pb2.GetUploadRequest(upload_id=upload_id),
                               timeout=min(client.timeout, 10.0), wait_for_ready=resuming)
        state = next((f for f in upload.files if f.file.name == name), None)
        if state is None or not state.writing or time.monotonic() > deadline:
            return upload, state
        time.sleep(0.002)


def _resumable(e):
    """True for a failure inside the request iterator after which the stream resumes: a
    dropped connection, or a resumable error of its FindChunks call."""
    return isinstance(e, ConnectionError) or (isinstance(e, errors.MgregError)
                                              and e.code in RESUMABLE)


def put_file(client, upload_id, name, path, *, dedup=True, chunk_bytes=0, chunks=(),
             on_progress=None, stats=None):
    """Sends local `path` as file `name` of an upload, from the bytes the server holds,
    resuming after a dropped stream (up to 5 times), in one pass over the file (_messages):
    its chunked SHA-256 goes with the last bytes. With `dedup`, chunks the server holds
    are not sent: FindChunks when the server's chunks (`chunk_bytes`, from BeginUpload;
    else GetUpload's) are the 1 MiB pieces, else `chunks`, the precomputed held chunk
    digests. Returns the PutFileResponse."""
    stats = stats if stats is not None else types.PushStats()
    attempt = 0
    probed = False
    digest_first = False  # the server refused a header without a digest
    while True:
        try:
            upload, state = _wait_not_writing(client, upload_id, name, attempt > 0)
        except errors.MgregError as e:
            if e.code not in RESUMABLE or attempt >= MAX_RESUMES:
                raise
            attempt += 1
            _backoff(attempt - 1)
            continue
        local_size = os.path.getsize(path)
        header = registry_pb2.PutFileRequest.Header(upload_id=upload_id, name=name)
        if state is not None:
            size, offset = state.file.size, state.held_bytes
            if local_size != size:
                raise errors.FailedPreconditionError(
                    f"local file '{path}' has {local_size} bytes but the upload announced "
                    f"{size} for '{name}'; the file changed since the upload began")
            if offset == size and _has_digest(state.file):
                if on_progress:
                    on_progress(size)
                return registry_pb2.PutFileResponse(held_bytes=size, complete=True)
            header.offset = offset
        elif local_size > PIECE_BYTES and not digest_first:
            # A file the upload does not list yet: its header announces the size, the
            # digest comes at the end.
            size, offset = local_size, 0
            header.size = size
        else:
            # A small file is hashed first (and so is any file for a server from before
            # final_chunked_sha256) and announced with its digest by a header-only
            # stream: the server may hold its content already (then it is complete at
            # once, no byte sent); afterwards the upload's state says where to start.
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
        cb = chunk_bytes or upload.chunk_bytes
        # A file of one chunk was looked up whole (its digest announced first).
        find = dedup and cb == PIECE_BYTES and size > cb

        def requests():
            try:
                yield from _messages(client, upload_id, name, path, offset, size, header,
                                     chunk_bytes=cb, find=find,
                                     chunks=chunks if dedup else (), sink=sink)
            except GeneratorExit:
                raise
            except BaseException as e:  # grpcio reports only UNKNOWN; keep the reason
                failed.append(e)
                raise

        try:
            return client._stub.PutFile(requests(), metadata=client._metadata)
        except grpc.RpcError as e:
            local = failed[0] if failed else None
            if local is not None and not _resumable(local):
                raise local from e  # a local problem (file changed, unreadable): no resume
            if state is None and e.code() == grpc.StatusCode.INVALID_ARGUMENT and \
                    not digest_first:
                log.info("mgreg: the server needs the digest of %s up front (%s); hashing "
                         "it first", name, e.details())
                digest_first = True
                continue
            if e.code() not in RESUMABLE or attempt >= MAX_RESUMES:
                raise client._error(e) from e
            log.info("mgreg: PutFile of %s cut (%s); resuming", name, e.code().name)
            attempt += 1
            stats.resumes += 1
            _backoff(attempt - 1)


def _find_chunks(client, upload_id, digests):
    """present[i] for each raw chunk digest (b"" = not asked, False)."""
    asked = [i for i, d in enumerate(digests) if d]
    present = [False] * len(digests)
    if not asked:
        return present
    r = client._unary("FindChunks", registry_pb2.FindChunksRequest(
        upload_id=upload_id, sha256=[digests[i] for i in asked]))
    for k, i in enumerate(asked):
        present[i] = k < len(r.present) and r.present[k]
    return present


def _held_chunks(client, upload, paths):
    """For a server whose chunks are not the 1 MiB pieces: per file to send, the raw
    digests of its chunks the server holds (b"" = send). Costs a read of a sample of
    every chunk_bytes-th chunk, and of every chunk when the sample finds one."""
    cb = upload.chunk_bytes
    out = {}
    if cb == PIECE_BYTES:  # asked per window while sending (_messages)
        return out
    for f in upload.files:
        if cb <= 0 or f.held_bytes != 0 or f.file.size <= cb:
            continue
        path = paths[f.file.name]
        if any(_find_chunks(client, upload.upload_id,
                            _local.chunk_digests(path, cb, SAMPLE_STRIDE))):
            digests = _local.chunk_digests(path, cb)
            out[f.file.name] = [d if present else b"" for d, present in
                                zip(digests, _find_chunks(client, upload.upload_id, digests))]
    return out


def _manifest(client, model, step, named):
    """FileInfos of (name, path) pairs. A file larger than one piece is announced by its
    size only, and hashed while it is sent (_messages); smaller ones are hashed now, so
    that the server can skip one it holds. When the step exists already every file is
    hashed first: the server then tells at once whether the content is the same (a
    no-op) or different (AlreadyExistsError without overwrite), before any byte is
    sent."""
    try:
        client._unary("GetCheckpoint", registry_pb2.GetCheckpointRequest(model=model,
                                                                          step=step))
        exists = True
    except errors.NotFoundError:
        exists = False
    paths = [path for _, path in named]
    sizes = [os.path.getsize(path) for path in paths]
    first = [i for i, size in enumerate(sizes) if exists or size <= PIECE_BYTES]
    digests = dict(zip(first, _digest_all([paths[i] for i in first])))
    out = []
    for i, (name, _) in enumerate(named):
        size, chunked = digests.get(i, (sizes[i], ""))
        out.append(registry_pb2.FileInfo(name=name, size=size, chunked_sha256=chunked))
    return out


def _begin(client, request, paths):
    """BeginUpload. A server from before final_chunked_sha256 refuses a file announced
    without a digest (INVALID_ARGUMENT): then those files ({name: path}) are hashed first
    and announced again, and their bytes go as to any server (the digest at the end only
    repeats the announced one)."""
    try:
        return client._unary("BeginUpload", request)
    except errors.InvalidArgumentError as e:
        missing = [f for f in request.files if not _has_digest(f)]
        if not missing:
            raise
        log.info("mgreg: the server needs every digest up front (%s); hashing %d file(s) "
                 "first", e.message, len(missing))
        for f, (size, chunked) in zip(missing, _digest_all([paths[f.name] for f in missing])):
            f.size, f.chunked_sha256 = size, chunked
        return client._unary("BeginUpload", request)


def _digest_all(paths):
    if not paths:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(8, len(paths)))) as ex:
        return list(ex.map(_local.digest_file, paths))


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
    manifest = _manifest(client, model, step, list(paths.items()))
    total = sum(m.size for m in manifest)
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
            if not _same_content(upload, model, step, manifest, paths):
                log.info("mgreg: upload %s is for other content; starting a new one", upload_id)
                upload = None
        except errors.NotFoundError:
            log.info("mgreg: upload %s expired; starting over", upload_id)
    if upload is None:
        upload = _begin(client, registry_pb2.BeginUploadRequest(
            model=model, step=step, basename=basename, files=manifest, overwrite=overwrite,
            force=force, kind=kind,
            metadata={str(k): str(v) for k, v in (metadata or {}).items()}), paths)
    if on_begin is not None:
        on_begin(upload.upload_id)
    bar = client._progress(progress, total, f"push {model}@{step}")
    try:
        done = 0
        to_send = []
        for f in upload.files:
            if f.held_bytes == f.file.size and _has_digest(f.file):
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
                         dedup=dedup, chunk_bytes=upload.chunk_bytes,
                         chunks=held.get(f.file.name, ()),
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


def _same_content(upload, model, step, manifest, paths):
    """True if an open upload is for this step and these local files: the same names and
    sizes, and each digest the upload knows matches the local file (a file it has no
    digest for yet is checked by the digest sent at its end)."""
    if (upload.model, upload.step) != (model, step) or \
            sorted((f.file.name, f.file.size) for f in upload.files) != \
            sorted((m.name, m.size) for m in manifest):
        return False
    local = {m.name: m.chunked_sha256 for m in manifest}
    for f in upload.files:
        if f.file.chunked_sha256:
            mine = local[f.file.name] or _local.digest_file(paths[f.file.name])[1]
            if mine != f.file.chunked_sha256:
                return False
        elif f.file.sha256:
            if _local.digest_file(paths[f.file.name], kind="sha256")[1] != f.file.sha256:
                return False
    return True


def _abort_quietly(client, upload_id):
    try:
        client._unary("AbortUpload", registry_pb2.AbortUploadRequest(upload_id=upload_id))
    except errors.MgregError as e:
        log.warning("mgreg: could not abort upload %s: %s", upload_id, e)


def begin_upload(client, model, step, *, basename, files, metadata, overwrite, force=False,
                 saved_model=None):
    _check_force(overwrite, force)
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
    manifest = _manifest(client, model, step, named)
    upload = _begin(client, registry_pb2.BeginUploadRequest(
        model=model, step=step, basename=basename or "", files=manifest, overwrite=overwrite,
        force=force, kind=kind,
        metadata={str(k): str(v) for k, v in (metadata or {}).items()}), dict(named))
    return UploadSession(client, upload.upload_id, owner=True,
                         chunk_bytes=upload.chunk_bytes)


class UploadSession:
    """An open upload: `id` (hand it to workers), put(path), status(), commit(), abort().

    The chief's session (from begin_upload) aborts the upload when a `with` block exits
    with an exception; a worker's (Client.upload(id)) never does."""

    def __init__(self, client, upload_id, owner, chunk_bytes=0):
        self._client = client
        self.id = upload_id
        self._owner = owner
        self._chunk_bytes = chunk_bytes
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
            r = put_file(self._client, self.id, name, path, chunk_bytes=self._chunk_bytes,
                         on_progress=bar.update_to, stats=self.stats)
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
