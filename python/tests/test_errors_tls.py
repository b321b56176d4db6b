"""Errors named like tf.errors, with the server's message; tokens and TLS."""

import hashlib
import socket
import subprocess

import pytest

import mgreg

WRITER, READER = "writer-secret", "reader-secret"


def sha(token):
    return hashlib.sha256(token.encode()).hexdigest()


def test_each_status_maps_to_its_class(client, data, model):
    with pytest.raises(mgreg.InvalidArgumentError, match="model name") as e:
        client.push("bad name!", data.tictactoe, progress=False)
    assert isinstance(e.value, ValueError) and e.value.message in str(e.value)
    with pytest.raises(mgreg.NotFoundError) as e:
        client.get(model, 5)
    assert isinstance(e.value, LookupError) and model in e.value.message
    assert client.latest(model) is None and client.latest_step(model) is None
    with pytest.raises(mgreg.InvalidArgumentError, match="step or alias"):
        client.get(model, 1, alias="production")


def test_a_prefix_with_no_checkpoint_names_what_is_missing(client, model, tmp_path):
    with pytest.raises(FileNotFoundError, match="model.ckpt-5.index' does not exist"):
        client.push(model, str(tmp_path / "model.ckpt-5"))
    # A directory is a SavedModel or nothing: the message names the files looked for.
    with pytest.raises(FileNotFoundError, match="saved_model.pb' nor .*saved_model.pbtxt'"):
        client.push(model, str(tmp_path) + "/")
    (tmp_path / "model.index").write_bytes(b"x")
    (tmp_path / "model.data-00000-of-00001").write_bytes(b"x")
    with pytest.raises(mgreg.InvalidArgumentError, match="no step"):
        client.push(model, str(tmp_path / "model"))


def test_a_server_that_is_down_raises_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mgreg.Client(f"127.0.0.1:{port}", timeout=1) as c:
        with pytest.raises(mgreg.UnavailableError,
                           match=f"cannot reach the mgreg server at 127.0.0.1:{port}") as e:
            c.latest("resnet")
    assert isinstance(e.value, ConnectionError)


def test_server_and_token_come_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("MGREG_SERVER", server.address)
    with mgreg.Client() as c:
        assert c.server == server.address and c.health() == "SERVING"


def test_token_scopes(make_server, data, tmp_path, monkeypatch):
    config = tmp_path / "tokens.textproto"
    config.write_text(
        f'tokens {{ name: "w" sha256: "{sha(WRITER)}" role: ROLE_WRITER '
        f'model_prefixes: "team-a/" }}\n'
        f'tokens {{ name: "r" sha256: "{sha(READER)}" role: ROLE_READER }}\n')
    srv = make_server("--in-memory", "--config", str(config))
    monkeypatch.delenv("MGREG_TOKEN", raising=False)
    with mgreg.Client(srv.address) as anonymous:
        with pytest.raises(mgreg.UnauthenticatedError):
            anonymous.latest("team-a/m")
    with mgreg.Client(srv.address, token="wrong") as c:
        with pytest.raises(mgreg.UnauthenticatedError):
            c.latest("team-a/m")
    with mgreg.Client(srv.address, token=WRITER) as w:
        assert w.push("team-a/m", data.tictactoe, progress=False).step == 19
        with pytest.raises(mgreg.PermissionDeniedError, match="team-a/"):
            w.push("team-b/m", data.tictactoe, progress=False)
    monkeypatch.setenv("MGREG_TOKEN", READER)
    with mgreg.Client(srv.address) as r:
        assert r.latest_step("team-a/m") == 19
        with pytest.raises(mgreg.PermissionDeniedError):
            r.delete("team-a/m", 19)


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    d = tmp_path_factory.mktemp("pki")
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=mgreg-test-ca", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for who in ("server", "client"):
        openssl("req", *key, "-keyout", f"{who}.key", "-out", f"{who}.csr",
                "-subj", f"/CN=mgreg-test-{who}", cwd=d)
        openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{who}.crt", "-days", "2", "-extfile", "san.ext",
                cwd=d)
    return d


def test_tls_and_mutual_tls(make_server, pki, data, model):
    config = pki / "tls.textproto"
    config.write_text(f'tls {{ cert_file: "{pki}/server.crt" key_file: "{pki}/server.key" '
                      f'client_ca_file: "{pki}/ca.crt" require_client_cert: true }}\n')
    srv = make_server("--in-memory", "--config", str(config))
    with mgreg.Client(srv.address, ca_cert=pki / "ca.crt", cert=pki / "client.crt",
                      key=(pki / "client.key").read_bytes()) as c:
        assert c.push(model, data.tictactoe, progress=False).step == 19
        assert c.health() == "SERVING"
    with mgreg.Client(srv.address, ca_cert=pki / "ca.crt", timeout=5) as no_cert:
        with pytest.raises(mgreg.UnavailableError):
            no_cert.latest(model)
    with mgreg.Client(srv.address, timeout=5) as plaintext:
        with pytest.raises(mgreg.UnavailableError):
            plaintext.latest(model)
    with pytest.raises(mgreg.InvalidArgumentError, match="both cert and key"):
        mgreg.Client(srv.address, cert=pki / "client.crt")
    with pytest.raises(mgreg.InvalidArgumentError, match="cannot read the ca_cert"):
        mgreg.Client(srv.address, ca_cert=pki / "missing.crt")
