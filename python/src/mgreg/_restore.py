"""restore(): a step's files into a directory TensorFlow loads as is, or a SavedModel step
into TF Serving's base path as BASE/<version>/ (as Client::Restore, RestoreSavedModel)."""

import errno
import os
import tempfile

import grpc
from google.protobuf import text_format

from . import _digest, _graph, _local, _push, _saved_model, errors
from ._tfproto.python.training import checkpoint_state_pb2
from .v1 import registry_pb2

STATE_FILE = "checkpoint"


def _check_writable(directory):
    """FailedPreconditionError unless `directory` exists writable or can be created.

    Creates nothing: the probe is the nearest existing ancestor."""
    path = os.path.abspath(directory)
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise errors.FailedPreconditionError(
            f"cannot create directory '{directory}': '{probe}' is a file; choose another "
            "directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".mgreg-write-test-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise errors.FailedPreconditionError(
            f"directory '{probe}' is not writable ({e.strerror}); choose another directory "
            "or fix its permissions") from e


def _download(client, checkpoint, info, path, bar, base):
    """ReadFile into a temporary file beside `path`, resumed at its offset if the stream
    drops, verified (size and the chunked SHA-256, or the SHA-256 of a file stored before
    chunked digests), synced, then renamed into place."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".mgreg-", dir=directory)
    try:
        h, expected, what = _digest.verifier(info)
        received = 0
        attempt = 0
        with os.fdopen(fd, "wb") as f:
            while True:
                request = registry_pb2.ReadFileRequest(model=checkpoint.model,
                                                       step=checkpoint.step,
                                                       name=info.name, offset=received)
                try:
                    for chunk in client._stream("ReadFile", request):
                        if chunk.offset != received:
                            raise errors.DataLossError(
                                f"the server sent '{info.name}' from offset {chunk.offset}, "
                                f"expected {received}; retry")
                        f.write(chunk.data)
                        h.update(chunk.data)
                        received += len(chunk.data)
                        bar.update_to(base + received)
                    break
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.UNAVAILABLE or attempt >= _push.MAX_RESUMES:
                        raise client._error(e) from e
                    attempt += 1
                    _push._backoff(attempt - 1)
            if received != info.size or h.hexdigest() != expected:
                raise errors.DataLossError(
                    f"'{os.path.basename(path)}' of {checkpoint.model} step {checkpoint.step} "
                    f"arrived with {received} bytes and {what} {h.hexdigest()}, not the "
                    f"{info.size} bytes and {expected} the server announced; retry")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def listed_prefixes(directory):
    """Prefixes the directory's `checkpoint` file lists whose .index is still there."""
    try:
        with open(os.path.join(directory, STATE_FILE), encoding="utf-8") as f:
            state = text_format.Merge(f.read(), checkpoint_state_pb2.CheckpointState())
    except (OSError, UnicodeDecodeError, text_format.ParseError):
        return []  # an unreadable state file is replaced
    return [p for p in state.all_model_checkpoint_paths
            if os.path.exists(os.path.join(directory, p) + ".index")]


def remove_checkpoint_files(directory, prefix):
    base = os.path.join(directory, prefix)
    parent, stem = os.path.dirname(base), os.path.basename(base) + "."
    try:
        entries = os.listdir(parent)
    except OSError:
        return
    for name in entries:
        if name.startswith(stem) and _local.is_file_name(name[len(stem):]):
            try:
                os.unlink(os.path.join(parent, name))
            except OSError:
                pass


def restore(client, model, directory, step, *, alias, keep_last, progress, graph_options,
            remove_newer=False, saved_model_only=False):
    if not isinstance(keep_last, int) or keep_last < 0:
        raise errors.InvalidArgumentError("keep_last must be an int >= 0 (0 keeps every one)")
    options = _graph.graph_options(graph_options)
    directory = os.fspath(directory)
    _check_writable(directory)
    checkpoint = client._get_proto(model, step, alias)
    if saved_model_only and checkpoint.kind != registry_pb2.SAVED_MODEL:
        raise errors.FailedPreconditionError(
            f"step {checkpoint.step} of model '{model}' is a checkpoint, not a SavedModel; "
            "restore it with restore() into a checkpoint directory")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise errors.FailedPreconditionError(
            f"cannot create directory '{directory}' ({e.strerror})") from e
    if checkpoint.kind == registry_pb2.SAVED_MODEL:
        if options.ByteSize() > 0:
            raise errors.InvalidArgumentError(
                f"step {checkpoint.step} of model '{model}' is a SavedModel, restored as "
                "stored: graph options filter a checkpoint's .meta; drop them (a filtered "
                "MetaGraphDef of a SavedModel: graph(tags=[...]))")
        return _saved_model.restore_version(client, checkpoint, directory, keep=keep_last,
                                            remove_newer=remove_newer, progress=progress,
                                            download=_download)
    prefix = f"{checkpoint.basename}-{checkpoint.step}"
    filter_graph = options.ByteSize() > 0
    bar = client._progress(progress, checkpoint.total_bytes, f"restore {model}@{checkpoint.step}")
    try:
        done = 0
        for info in checkpoint.files:
            path = os.path.join(directory, f"{prefix}.{info.name}")
            if info.name == "meta" and filter_graph:
                _, data = _graph._stream(client, model, checkpoint.step, None, options)
                if not _same_bytes(path, data):
                    _graph.write_atomically(path, data)
            elif not _local.file_matches(path, info):
                _download(client, checkpoint, info, path, bar, done)
            done += info.size
            bar.update_to(done)
    finally:
        bar.close()

    # The switch: the `checkpoint` file names the restored prefix as the latest, after the
    # listed prefixes still there. Renaming it into place is the atomic moment.
    prefixes = [p for p in listed_prefixes(directory) if p != prefix] + [prefix]
    dropped = []
    if keep_last and len(prefixes) > keep_last:
        dropped, prefixes = prefixes[:-keep_last], prefixes[-keep_last:]
    state = checkpoint_state_pb2.CheckpointState(model_checkpoint_path=prefix,
                                                 all_model_checkpoint_paths=prefixes)
    text = text_format.MessageToString(state).encode()
    if not _same_bytes(os.path.join(directory, STATE_FILE), text):
        _graph.write_atomically(os.path.join(directory, STATE_FILE), text)
    for p in dropped:
        remove_checkpoint_files(directory, p)
    return os.path.join(directory, prefix)


def _same_bytes(path, data):
    try:
        if os.path.getsize(path) != len(data):
            return False
        with open(path, "rb") as f:
            return f.read() == data
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
            raise
        return False
