"""restore() equals `mgreg restore`, is verified, idempotent, atomic, and fails cleanly."""

import os

import grpc
import pytest
from google.protobuf import text_format

import mgreg
from mgreg._tfproto.python.training import checkpoint_state_pb2
from conftest import chunked_sha256_file, copy_checkpoint, tree


def latest_checkpoint(directory):
    """tf.train.latest_checkpoint's logic: the state file, a relative path joined."""
    with open(os.path.join(directory, "checkpoint"), encoding="utf-8") as f:
        state = text_format.Parse(f.read(), checkpoint_state_pb2.CheckpointState())
    p = state.model_checkpoint_path
    p = p if os.path.isabs(p) else os.path.join(directory, p)
    return p if os.path.exists(p + ".index") else None


def test_restore_equals_cli_and_latest_checkpoint_finds_it(client, cli, data, model, tmp_path):
    pushed = client.push(model, data.tfx, progress=False)
    prefix = client.restore(model, tmp_path / "py", clear_devices=True, progress=False)
    cli("restore", model, tmp_path / "cli", "--clear-devices")
    assert prefix == str(tmp_path / "py" / "model.ckpt-1000")
    assert latest_checkpoint(tmp_path / "py") == prefix
    assert tree(tmp_path / "py") == tree(tmp_path / "cli")
    assert os.path.getsize(prefix + ".meta") == 782302
    for f in pushed.files:
        if f.name != "meta":
            assert chunked_sha256_file(f"{prefix}.{f.name}") == f.chunked_sha256


def test_second_restore_rewrites_nothing(client, data, model, tmp_path):
    client.push(model, data.t2t, progress=False)
    client.restore(model, tmp_path, progress=False)
    before = {p: os.stat(tmp_path / p).st_mtime_ns for p in tree(tmp_path)}
    client.restore(model, tmp_path, progress=False)
    after = {p: os.stat(tmp_path / p).st_mtime_ns for p in tree(tmp_path)}
    assert before == after


def test_keep_last_prunes_older_checkpoints_after_the_switch(client, data, model, tmp_path):
    for step in (1, 2, 3):
        client.push(model, copy_checkpoint(data.tictactoe, tmp_path / "src", f"ckpt-{step}"),
                    progress=False)
    out = tmp_path / "out"
    for step in (1, 2, 3):
        client.restore(model, out, step, keep_last=2, progress=False)
    assert sorted(os.listdir(out)) == ["checkpoint", "ckpt-2.data-00000-of-00001",
                                       "ckpt-2.index", "ckpt-3.data-00000-of-00001",
                                       "ckpt-3.index"]
    with open(out / "checkpoint", encoding="utf-8") as f:
        assert f.read() == ('model_checkpoint_path: "ckpt-3"\n'
                            'all_model_checkpoint_paths: "ckpt-2"\n'
                            'all_model_checkpoint_paths: "ckpt-3"\n')
    client.set_alias(model, "production", 1)
    assert client.restore(model, out, alias="production", progress=False) == str(out / "ckpt-1")


def test_unwritable_directory_fails_before_any_download(client, data, model, tmp_path):
    client.push(model, data.tictactoe, progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(mgreg.FailedPreconditionError, match="is a file"):
        client.restore(model, tmp_path / "file" / "serving", progress=False)
    assert os.listdir(tmp_path) == ["file"]


def test_bad_inputs_leave_nothing_in_the_directory(client, data, model, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(mgreg.NotFoundError):
        client.restore(model, out, progress=False)  # unknown model
    with pytest.raises(mgreg.InvalidArgumentError):
        client.restore("bad name!", out, progress=False)
    with pytest.raises(mgreg.InvalidArgumentError, match="keep_last"):
        client.restore(model, out, keep_last=-1)
    assert not out.exists()


class FlipByte(grpc.UnaryStreamClientInterceptor):
    """Flips one byte of every ReadFile chunk the server sends."""

    def intercept_unary_stream(self, continuation, details, request):
        stream = continuation(details, request)
        if not details.method.endswith("/ReadFile"):
            return stream

        def flipped():
            for chunk in stream:
                if chunk.data:
                    chunk.data = bytes([chunk.data[0] ^ 1]) + chunk.data[1:]
                yield chunk
        return flipped()


def test_a_flipped_byte_raises_data_loss_and_leaves_no_file(server, data, model, tmp_path):
    with mgreg.Client(server.address) as c:
        c.push(model, data.tictactoe, progress=False)
        c._stub = mgreg.client.registry_pb2_grpc.RegistryStub(
            grpc.intercept_channel(c._channel, FlipByte()))
        with pytest.raises(mgreg.DataLossError, match="SHA-256"):
            c.restore(model, tmp_path, progress=False)
    assert os.listdir(tmp_path) == []
