"""Resume after a cut stream, dedup counted by the server, multi-writer from 3 processes."""

import os
import random
import uuid
import subprocess

import pytest

import mgreg
from mgreg import _push
from mgreg.v1 import registry_pb2
from conftest import PYTHON, ROOT, chunked_sha256_file, copy_checkpoint, tree

BIG = "data-00001-of-00002"  # 1,670,408 bytes: more than one 1 MiB chunk


@pytest.fixture
def hook(monkeypatch):
    """Installs a function called before each PutFile message; records (name, offset)."""
    calls = []

    def install(fn=None):
        def on_message(upload_id, name, offset):
            calls.append((name, offset))
            if fn is not None:
                fn(upload_id, name, offset)
        monkeypatch.setattr(_push, "_on_message", on_message)
        return calls
    return install


def held(client, upload_id, name):
    status = client._unary("GetUpload", registry_pb2.GetUploadRequest(upload_id=upload_id))
    return next(f.held_bytes for f in status.files if f.file.name == name)


def wait_held(client, upload_id, name, at_least):
    while held(client, upload_id, name) < at_least:
        pass


def test_cut_stream_resumes_at_the_held_chunk_boundary(server, client, data, model, hook,
                                                       tmp_path):
    cut = []

    def cut_once(upload_id, name, offset):
        if name == BIG and offset >= 1 << 20 and not cut:
            with mgreg.Client(server.address) as other:
                wait_held(other, upload_id, name, 1 << 20)
            cut.append(offset)
            raise ConnectionResetError("test: the connection dropped")

    calls = hook(cut_once)
    prefix = unique_t2t(data, tmp_path)
    pushed = client.push(model, prefix, progress=False)
    stats = client.last_push_stats
    assert stats.resumes == 1
    starts = [offset for (name, offset) in calls if name == BIG]
    assert starts[0] == 0 and cut == [1 << 20]
    resumed_at = starts[starts.index(1 << 20, 1) if starts.count(1 << 20) > 1 else -1]
    assert resumed_at % (1 << 20) == 0 and resumed_at == 1 << 20
    # The resume sent only the rest of the file: every byte once, what was sent plus
    # what the server held (whole files, or chunk 0 when t2t was pushed before) is all.
    assert stats.bytes_sent + stats.bytes_deduplicated_files + \
        stats.bytes_deduplicated_chunks == pushed.total_bytes
    assert {f.name: f.chunked_sha256 for f in pushed.files} == {
        f.name: f.chunked_sha256 for f in client.get(model, 1).files}


def test_push_survives_a_server_killed_and_restarted_mid_upload(make_server, data, model,
                                                                  tmp_path, hook):
    srv = make_server("--data-dir", str(tmp_path / "db"))
    killed = []

    def kill_once(upload_id, name, offset):
        if name == BIG and offset >= 1 << 20 and not killed:
            with mgreg.Client(srv.address) as other:
                wait_held(other, upload_id, name, 1 << 20)
            srv.kill()
            srv.start(listen=srv.address)
            killed.append(upload_id)

    hook(kill_once)
    with mgreg.Client(srv.address) as c:
        pushed = c.push(model, data.t2t, progress=False)
        assert killed
        # The restarted server dropped the open upload; the push began a new one.
        assert c.last_push_stats.restarts == 1
        assert c.get(model, 1) == pushed
        out = tmp_path / "out"
        c.restore(model, out, progress=False)
    for name in ("index", "data-00000-of-00002", BIG):
        with open(data.t2t + "." + name, "rb") as f:
            assert (out / f"model.ckpt-1.{name}").read_bytes() == f.read()


def test_push_with_an_expired_upload_id_starts_over(client, data, model):
    pushed = client.push(model, data.tictactoe, upload_id="no-such-upload", progress=False)
    assert pushed.step == 19


def test_changed_step_sends_at_most_one_chunk(server, client, data, model, tmp_path):
    client.push(model, data.t2t, progress=False)
    step2 = copy_checkpoint(data.t2t, tmp_path, "model.ckpt-2")
    path = step2 + "." + BIG
    raw = bytearray(open(path, "rb").read())
    raw[-50_000] ^= 0xFF  # same size: the .index stays valid
    open(path, "wb").write(bytes(raw))
    before = server.metric("mgreg_grpc_received_bytes_total", method="PutFile")
    client.push(model, step2, progress=False)
    received = server.metric("mgreg_grpc_received_bytes_total", method="PutFile") - before
    stats = client.last_push_stats
    assert stats.bytes_deduplicated_files > 0  # .index and the small shard: not sent
    assert stats.bytes_deduplicated_chunks == 1 << 20
    assert stats.bytes_sent == len(raw) - (1 << 20)
    assert 0 < received <= (1 << 20)  # counted by the server: less than one chunk


def unique_t2t(data, directory):
    """t2t with a byte of its big shard changed: content no other test pushed (its
    .index stays valid: same sizes)."""
    prefix = copy_checkpoint(data.t2t, directory, "model.ckpt-1")
    path = prefix + "." + BIG
    raw = bytearray(open(path, "rb").read())
    rng = random.Random(uuid.uuid4().int)
    raw[len(raw) - 1 - rng.randrange(90_000)] ^= rng.randrange(1, 256)
    open(path, "wb").write(bytes(raw))
    return prefix


WORKER = """
import sys
import mgreg
with mgreg.Client(sys.argv[1]) as c:
    assert c.upload(sys.argv[2]).put(sys.argv[3], progress=False)
"""


def test_multi_writer_from_three_processes(server, client, cli, data, model, tmp_path):
    prefix = unique_t2t(data, tmp_path / "src")
    files = [prefix + s for s in (".index", ".data-00000-of-00002", "." + BIG)]
    up = client.begin_upload(model, 1, basename="model.ckpt", files=files,
                             metadata={"writers": 3})
    with pytest.raises(mgreg.FailedPreconditionError, match="not complete; send: .*data-0000"):
        up.commit()
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python", "src"))
    workers = [subprocess.Popen([PYTHON, "-c", WORKER, server.address, up.id, f], env=env)
               for f in files[1:]]
    assert up.put(files[0], progress=False)
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    committed = up.commit(wait=600)
    assert committed.metadata == {"writers": "3"}
    cli("restore", model, tmp_path / "cli")
    src = {n: open(prefix + "." + n, "rb").read() for n in ("index", "data-00000-of-00002", BIG)}
    got = tree(tmp_path / "cli")
    assert {k[len("model.ckpt-1."):]: v for k, v in got.items() if k != "checkpoint"} == src


def test_upload_without_manifest_learns_files_from_writers(client, data, model, tmp_path):
    prefix = unique_t2t(data, tmp_path)
    with client.begin_upload(model, 1, basename="model.ckpt") as up:
        for s in (".index", ".data-00000-of-00002", "." + BIG):
            worker = client.upload(up.id)
            assert worker.put(prefix + s, progress=False)
        # The worker sent the big shard once: its changed last chunk, and its first chunk
        # too unless the server held it from t2t (FindChunks while sending).
        size = os.path.getsize(prefix + "." + BIG)
        assert worker.stats.bytes_sent + worker.stats.bytes_deduplicated_chunks == size
        assert worker.stats.bytes_sent >= size - (1 << 20)
        files = {f.name: f.chunked_sha256 for f in up.commit(wait=60).files}
        assert files[BIG] == chunked_sha256_file(prefix + "." + BIG)


def test_abort_and_with_block_abort(client, data, model):
    up = client.begin_upload(model, 1, basename="model.ckpt")
    up.abort()
    with pytest.raises(mgreg.NotFoundError, match="does not exist"):
        up.status()
    with pytest.raises(RuntimeError):
        with client.begin_upload(model, 2, basename="model.ckpt") as up2:
            raise RuntimeError("the chief failed")
    with pytest.raises(mgreg.NotFoundError):
        up2.status()
    with pytest.raises(mgreg.InvalidArgumentError, match="not a checkpoint file"):
        client.upload("x").put(data.t2t_dir + "/checkpoint")
