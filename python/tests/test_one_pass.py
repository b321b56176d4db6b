"""The one-pass push (issue 17): a file larger than one 1 MiB piece is announced by its
size alone, read once, its pieces hashed while they are sent, and its chunked SHA-256
given with the last bytes (PutFileRequest.final_chunked_sha256); the server's chunks are
asked for (FindChunks) one window of pieces at a time."""

import hashlib
import os
import random
import shutil
import threading

import grpc
import pytest

import mgreg
from mgreg import _digest, _local, _pieces, _push
from mgreg.v1 import registry_pb2
from conftest import chunked_sha256_file, copy_checkpoint

MIB = 1 << 20
BIG = "data-00001-of-00002"


def big_t2t(data, directory, extra=40 * MIB + 12345, seed=None):
    """t2t with `extra` random bytes appended to its big shard: 42 pieces, windows of 16,
    16 and 10 (the .index stays valid: its tensors still lie inside the shard)."""
    prefix = copy_checkpoint(data.t2t, directory, "model.ckpt-1")
    with open(prefix + "." + BIG, "ab") as f:
        f.write(random.Random(seed).randbytes(extra))
    return prefix


@pytest.fixture
def spy(monkeypatch):
    """Records the unary requests, the pieces read and the files hashed up front."""
    seen = {"unary": [], "read": [], "digested": []}
    unary = mgreg.Client._unary

    def record_unary(self, method, request, **kw):
        seen["unary"].append((method, request))
        return unary(self, method, request, **kw)

    read = _pieces._read_and_hash

    def record_read(fd, path, offset, n):
        seen["read"].append((os.path.basename(path), offset))
        return read(fd, path, offset, n)

    digest = _local.digest_file

    def record_digest(path, kind="chunked"):
        seen["digested"].append(os.path.basename(path))
        return digest(path, kind)

    monkeypatch.setattr(mgreg.Client, "_unary", record_unary)
    monkeypatch.setattr(_pieces, "_read_and_hash", record_read)
    monkeypatch.setattr(_local, "digest_file", record_digest)
    return seen


def test_large_file_is_read_once_and_its_digest_sent_at_the_end(client, cli, data, model,
                                                                tmp_path, spy):
    prefix = big_t2t(data, tmp_path / "src")
    path = prefix + "." + BIG
    size = os.path.getsize(path)
    pushed = client.push(model, prefix, progress=False)

    begin = [r for m, r in spy["unary"] if m == "BeginUpload"]
    announced = {f.name: f for f in begin[0].files}
    assert announced[BIG].size == size and announced[BIG].chunked_sha256 == ""
    assert announced["index"].chunked_sha256 == chunked_sha256_file(prefix + ".index")
    # Every piece of the big shard read exactly once, and never hashed up front.
    assert sorted(o for n, o in spy["read"] if n.endswith(BIG)) == list(range(0, size, MIB))
    assert not [n for n in spy["digested"] if n.endswith(BIG)]
    # FindChunks once per window of 16 pieces (not for files of one piece).
    asked = [len(r.sha256) for m, r in spy["unary"] if m == "FindChunks"]
    assert asked == [16, 16, 10]

    stats = client.last_push_stats
    assert stats.bytes_sent >= 40 * MIB
    assert stats.bytes_sent + stats.bytes_deduplicated_files + \
        stats.bytes_deduplicated_chunks == pushed.total_bytes
    files = {f.name: f.chunked_sha256 for f in pushed.files}
    assert files[BIG] == chunked_sha256_file(path)
    cli("restore", model, tmp_path / "out")
    assert (tmp_path / "out" / f"model.ckpt-1.{BIG}").read_bytes() == open(path, "rb").read()


def test_mostly_unchanged_step_sends_only_the_changed_pieces(server, client, data, model,
                                                             tmp_path):
    prefix = big_t2t(data, tmp_path / "one")
    client.push(model, prefix, progress=False)
    step2 = tmp_path / "two"
    os.makedirs(step2)
    for name in os.listdir(tmp_path / "one"):
        shutil.copy(tmp_path / "one" / name, step2 / name.replace("ckpt-1.", "ckpt-2."))
    path = str(step2 / f"model.ckpt-2.{BIG}")
    raw = bytearray(open(path, "rb").read())
    for piece in (3, 20):  # in the first and the second window
        raw[piece * MIB + 7] ^= 0xFF
    raw[-1] ^= 0xFF  # the last, shorter piece
    open(path, "wb").write(bytes(raw))
    last = len(raw) % MIB
    before = server.metric("mgreg_grpc_received_bytes_total", method="PutFile")
    pushed = client.push(model, str(step2 / "model.ckpt-2"), progress=False)
    received = server.metric("mgreg_grpc_received_bytes_total", method="PutFile") - before
    stats = client.last_push_stats
    assert stats.bytes_sent == 2 * MIB + last
    assert stats.bytes_deduplicated_chunks == len(raw) - (2 * MIB + last)
    assert stats.bytes_deduplicated_files == pushed.total_bytes - len(raw)  # index, shard 0
    assert stats.bytes_sent <= received <= stats.bytes_sent + 64 * 1024
    assert {f.name: f.chunked_sha256 for f in pushed.files}[BIG] == \
        _digest.chunked_sha256(bytes(raw))


def begin_without_digest(client, model, prefix):
    """An upload of t2t at `prefix` whose big shard is announced by its size only."""
    files = []
    for name in ("index", "data-00000-of-00002", BIG):
        path = f"{prefix}.{name}"
        digest = "" if name == BIG else chunked_sha256_file(path)
        files.append(registry_pb2.FileInfo(name=name, size=os.path.getsize(path),
                                           chunked_sha256=digest))
    return client._unary("BeginUpload", registry_pb2.BeginUploadRequest(
        model=model, step=1, basename="model.ckpt", files=files))


def send_raw(client, upload_id, path, end):
    """Sends bytes [0, end) of the big shard with no digest; returns the bytes held."""
    data = open(path, "rb").read()[:end]
    header = registry_pb2.PutFileRequest.Header(upload_id=upload_id, name=BIG, offset=0)
    msgs = [registry_pb2.PutFileRequest(header=header)]
    msgs += [registry_pb2.PutFileRequest(data=data[i:i + MIB]) for i in range(0, end, MIB)]
    try:
        r = client._stub.PutFile(iter(msgs), metadata=client._metadata)
        assert not r.complete  # every byte, but no digest yet
        return r.held_bytes
    except grpc.RpcError as e:  # "ended after N of M bytes": the server keeps them
        assert e.code() == grpc.StatusCode.DATA_LOSS, e
        upload = client._unary("GetUpload", registry_pb2.GetUploadRequest(
            upload_id=upload_id))
        return next(f.held_bytes for f in upload.files if f.file.name == BIG)


def test_all_bytes_held_without_digest_completes_with_a_digest_only_message(
        client, data, model, tmp_path, monkeypatch):
    prefix = big_t2t(data, tmp_path, extra=3 * MIB)
    path = prefix + "." + BIG
    size = os.path.getsize(path)
    upload = begin_without_digest(client, model, prefix)
    assert send_raw(client, upload.upload_id, path, size) == size
    offsets = []
    monkeypatch.setattr(_push, "_on_message", lambda u, name, at: offsets.append((name, at)))
    pushed = client.push(model, prefix, upload_id=upload.upload_id, progress=False)
    assert [at for name, at in offsets if name == BIG] == [size]  # no byte again
    assert client.last_push_stats.bytes_sent <= os.path.getsize(prefix + ".index") + 24
    assert {f.name: f.chunked_sha256 for f in pushed.files}[BIG] == chunked_sha256_file(path)


def test_file_changed_between_attempts_fails_its_final_digest(client, data, model, tmp_path):
    prefix = big_t2t(data, tmp_path, extra=3 * MIB)
    path = prefix + "." + BIG
    upload = begin_without_digest(client, model, prefix)
    assert send_raw(client, upload.upload_id, path, MIB) == MIB
    raw = bytearray(open(path, "rb").read())
    raw[10] ^= 0xFF  # inside the bytes the server holds; same size
    open(path, "wb").write(bytes(raw))
    with pytest.raises(mgreg.DataLossError, match=BIG):
        client.push(model, prefix, upload_id=upload.upload_id, progress=False)
    with pytest.raises(mgreg.NotFoundError):
        client.get(model, 1)  # nothing committed
    pushed = client.push(model, prefix, progress=False)  # a new upload sends it whole
    assert {f.name: f.chunked_sha256 for f in pushed.files}[BIG] == \
        _digest.chunked_sha256(bytes(raw))


# --- the message stream alone (no server) ----------------------------------------------


class FakeClient:
    """Answers FindChunks from a set of raw digests the 'server' holds."""

    def __init__(self, held):
        self.held = held
        self.asked = []

    def _unary(self, method, request):
        assert method == "FindChunks"
        self.asked.append(len(request.sha256))
        return registry_pb2.FindChunksResponse(present=[d in self.held
                                                        for d in request.sha256])


@pytest.mark.parametrize("chunk_bytes,mode,offset", [
    (MIB, "find", 0), (MIB, "find", 2 * MIB), (MIB, "none", 0), (MIB, "find", 5 * MIB + 100),
    (64 << 10, "chunks", 0), (64 << 10, "chunks", 3 * MIB), (4 * MIB, "chunks", 0),
    (0, "none", 12345)])
def test_messages_rebuild_the_file_and_end_with_its_digest(tmp_path, monkeypatch,
                                                           chunk_bytes, mode, offset):
    monkeypatch.setattr(_push, "WINDOW_PIECES", 2)
    content = random.Random(7).randbytes(5 * MIB + 4321)
    path = tmp_path / "f"
    path.write_bytes(content)
    size = len(content)
    cb = chunk_bytes or size
    stored = {}  # what the "server" holds: every other chunk
    for i, k in enumerate(range(0, size, cb)):
        if i % 2 == 0:
            stored[hashlib.sha256(content[k:k + cb]).digest()] = content[k:k + cb]
    client = FakeClient(set(stored))
    chunks = ()
    if mode == "chunks":
        chunks = [hashlib.sha256(content[k:k + cb]).digest() for k in range(0, size, cb)]
        chunks = [d if d in stored else b"" for d in chunks]
    header = registry_pb2.PutFileRequest.Header(upload_id="u", name="f", offset=offset)
    counted = []
    msgs = list(_push._messages(client, "u", "f", str(path), offset, size, header,
                                chunk_bytes=chunk_bytes, find=mode == "find", chunks=chunks,
                                sink=lambda done, sent, dedup: counted.append((sent, dedup))))

    assert msgs[0].header == header
    assert not any(m.HasField("header") for m in msgs[1:])
    assert [bool(m.final_chunked_sha256) for m in msgs] == [False] * (len(msgs) - 1) + [True]
    assert msgs[-1].final_chunked_sha256 == chunked_sha256_of(content)
    rebuilt = bytearray(content[:offset])
    for m in msgs:
        if m.existing_chunk:
            assert mode != "none" and len(rebuilt) % cb == 0  # only at a chunk boundary
            rebuilt += stored[m.existing_chunk]
        else:
            assert len(m.data) <= _push.MESSAGE_BYTES
            if chunks:  # a data message never crosses a chunk boundary
                assert len(rebuilt) // cb == (len(rebuilt) + len(m.data) - 1) // cb
            rebuilt += m.data
    assert bytes(rebuilt) == content
    assert sum(s + d for s, d in counted) == size - offset
    if mode == "find" and offset % MIB == 0:
        assert client.asked and max(client.asked) <= 2  # one FindChunks per window
        assert sum(d for _, d in counted) > 0
    elif mode != "find":
        assert client.asked == []


def chunked_sha256_of(content):
    pieces = b"".join(hashlib.sha256(content[i:i + MIB]).digest()
                      for i in range(0, len(content), MIB))
    return hashlib.sha256(pieces).hexdigest()


def test_messages_of_an_empty_file_are_one_header_with_the_empty_digest(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    header = registry_pb2.PutFileRequest.Header(upload_id="u", name="e", offset=0)
    msgs = list(_push._messages(None, "u", "e", str(path), 0, 0, header, chunk_bytes=MIB,
                                find=True, chunks=(), sink=lambda *a: None))
    assert len(msgs) == 1 and msgs[0].header == header and not msgs[0].data
    assert msgs[0].final_chunked_sha256 == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("size", [0, 1, MIB, MIB + 1, 3 * MIB - 1])
def test_piece_reader_reads_every_piece_in_order(tmp_path, size):
    content = random.Random(size).randbytes(size)
    path = tmp_path / "f"
    path.write_bytes(content)
    with _pieces.PieceReader(path, size, ahead=2) as reader:
        pieces = list(reader.pieces())
    assert [p.offset for p in pieces] == list(range(0, size, MIB))
    assert b"".join(p.data for p in pieces) == content
    assert all(p.sha256 == hashlib.sha256(p.data).digest() for p in pieces)


def test_piece_reader_of_a_file_that_shrank_names_it(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * (MIB + 10))
    with _pieces.PieceReader(path, 2 * MIB) as reader:
        with pytest.raises(mgreg.FailedPreconditionError,
                           match=f"'{path}' ended at {MIB + 10} bytes.*shrank"):
            list(reader.pieces())


def test_piece_reader_stopped_early_closes_its_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"y" * (8 * MIB))
    before = len(os.listdir("/proc/self/fd"))
    reader = _pieces.PieceReader(path, 8 * MIB, ahead=4)
    it = reader.pieces()
    next(it)
    reader.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_server_that_needs_digests_up_front_gets_them(client, data, model, tmp_path,
                                                      monkeypatch):
    """A server from before final_chunked_sha256 refuses a file without a digest at
    BeginUpload (INVALID_ARGUMENT, as main's validation.cc said): the push hashes it
    first and announces it again."""
    prefix = big_t2t(data, tmp_path, extra=2 * MIB)
    begins = []
    unary = mgreg.Client._unary

    def old_server(self, method, request, **kw):
        if method == "BeginUpload":
            begins.append([f.chunked_sha256 for f in request.files])
            if not all(f.chunked_sha256 for f in request.files):
                raise mgreg.InvalidArgumentError(
                    f"file '{BIG}' has no digest: give chunked_sha256")
        return unary(self, method, request, **kw)

    monkeypatch.setattr(mgreg.Client, "_unary", old_server)
    pushed = client.push(model, prefix, progress=False)
    assert len(begins) == 2 and "" in begins[0] and "" not in begins[1]
    assert {f.name: f.chunked_sha256 for f in pushed.files}[BIG] == \
        chunked_sha256_file(prefix + "." + BIG)

    def refusing_server(self, method, request, **kw):
        if method == "BeginUpload":
            begins.append([f.chunked_sha256 for f in request.files])
            raise mgreg.InvalidArgumentError("metadata key 'x' is too long")
        return unary(self, method, request, **kw)

    begins.clear()
    monkeypatch.setattr(mgreg.Client, "_unary", refusing_server)
    with pytest.raises(mgreg.InvalidArgumentError, match="too long"):
        client.push(model + "-2", prefix, progress=False)
    assert len(begins) == 2  # hashed and asked once more, then the error is the caller's


def test_stream_cut_while_pieces_are_read_ahead_resumes_and_leaves_no_thread(
        server, client, data, model, tmp_path, monkeypatch):
    prefix = big_t2t(data, tmp_path)
    cut = []

    def cut_once(upload_id, name, offset):
        if name == BIG and offset >= 20 * MIB and not cut:  # in the second window
            cut.append(offset)
            raise ConnectionResetError("test: the connection dropped")

    monkeypatch.setattr(_push, "_on_message", cut_once)
    pushed = client.push(model, prefix, progress=False)
    assert cut and client.last_push_stats.resumes == 1
    assert {f.name: f.chunked_sha256 for f in pushed.files}[BIG] == \
        chunked_sha256_file(prefix + "." + BIG)
    assert [t.name for t in threading.enumerate() if t.name.startswith("mgreg-hash")] == []
