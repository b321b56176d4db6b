"""Fixtures: the real mgreg-server on 127.0.0.1 port 0, the C++ CLI as the oracle, the
real TensorFlow files of ../shared/testdata/tf.

Binaries: $MGREG_SERVER_BIN and $MGREG_CLI_BIN (CTest sets them), else build/ of this
checkout. A missing binary or Python package fails the run; missing test data skips the
tests that need it, unless MGREG_REQUIRE_TESTDATA=1 (then it fails too).
"""

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if os.path.join(ROOT, "python", "src") not in sys.path and not os.environ.get("MGREG_INSTALLED"):
    sys.path.insert(0, os.path.join(ROOT, "python", "src"))
READY = re.compile(r"mgreg-server listening on (\S+):(\d+) \((.*)\)")


def _binary(env, default):
    path = os.environ.get(env) or os.path.join(ROOT, "build", default)
    if not os.access(path, os.X_OK):
        pytest.exit(f"{env}: no executable '{path}'; build it (scripts/build.sh) or set {env}",
                    returncode=3)
    return path


SERVER_BIN = _binary("MGREG_SERVER_BIN", "server/mgreg-server")
CLI_BIN = _binary("MGREG_CLI_BIN", "client/mgreg")


def testdata_dir():
    return os.environ.get("MGREG_TESTDATA") or os.path.join(os.path.dirname(ROOT), "shared",
                                                            "testdata", "tf")


class Data:
    """Paths of the real TensorFlow checkpoints used by the tests."""

    def __init__(self, root):
        self.root = root
        self.tfx_dir = os.path.join(
            root, "tfx/tfx/components/testdata/trainer/current/Format-Serving")
        self.tfx = os.path.join(self.tfx_dir, "model.ckpt-1000")
        self.t2t_dir = os.path.join(root, "t2t/tensor2tensor/test_data/transformer_test_ckpt")
        self.t2t = os.path.join(self.t2t_dir, "model.ckpt-1")
        self.tictactoe = os.path.join(root, "tictactoe/tf_ckpts/ckpt-19")
        self.tf2onnx = os.path.join(root, "tf2onnx/tests/models/regression/checkpoint/model")
        serving = os.path.join(root, "serving/tensorflow_serving/servables/tensorflow/testdata")
        # Real SavedModel version directories (issue 15): TF1 CPU with an asset and a
        # Snappy index, TF1 GPU, TF2 with fingerprint.pb, and one not named by a number.
        self.saved_models = [
            os.path.join(serving, "saved_model_half_plus_two_cpu/00000123"),
            os.path.join(serving, "saved_model_half_plus_two_gpu/00000123"),
            os.path.join(serving, "saved_model_half_plus_two_tf2_cpu/00000123"),
            os.path.join(root, "tf2onnx/tests/models/regression/saved_model"),
        ]


@pytest.fixture(scope="session")
def data():
    root = testdata_dir()
    d = Data(root)
    if not os.path.exists(d.tfx + ".index"):
        msg = f"TensorFlow test data not found at {root} (set MGREG_TESTDATA)"
        if os.environ.get("MGREG_REQUIRE_TESTDATA", "0") not in ("", "0"):
            pytest.fail(msg)
        pytest.skip(msg)
    return d


class Server:
    """A real mgreg-server process; `address` is "127.0.0.1:PORT"."""

    def __init__(self, args, cwd):
        self.args, self.cwd = list(args), cwd
        self.proc = None
        self.address = self.metrics = None
        self.log = []

    def start(self, listen="127.0.0.1:0"):
        cmd = [SERVER_BIN, "--listen", listen] + self.args
        self.proc = subprocess.Popen(cmd, cwd=self.cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        for line in self.proc.stdout:
            self.log.append(line)
            m = READY.search(line)
            if m:
                self.address = f"{m.group(1)}:{m.group(2)}"
                mm = re.search(r"metrics on (http://\S+)", m.group(3))
                self.metrics = mm.group(1) if mm else None
                break
        else:
            raise RuntimeError(f"mgreg-server {cmd} exited {self.proc.wait()}:\n"
                               + "".join(self.log))
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _drain(self):
        for line in self.proc.stdout:
            self.log.append(line)

    def restart(self):
        """Stops (SIGTERM) and starts again on the same port."""
        self.stop()
        return self.start(listen=self.address)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(timeout=60)
            assert rc == 0, f"mgreg-server exited {rc} on SIGTERM:\n" + "".join(self.log)
        self.proc = None

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def metric(self, name, **labels):
        """The value of one Prometheus sample from --metrics-listen (0 when absent)."""
        with urllib.request.urlopen(self.metrics, timeout=10) as r:
            text = r.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                key, _, value = line.rpartition(" ")
                got = key[len(name):].strip("{}")
                if all(f'{k}="{v}"' in got for k, v in labels.items()):
                    total += float(value)
        return total


@pytest.fixture
def make_server(tmp_path):
    """Starts servers with extra flags (stopped with SIGTERM, exit 0 asserted, at the end)."""
    servers = []

    def make(*args):
        s = Server(args, str(tmp_path)).start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = Server(["--in-memory", "--metrics-listen", "127.0.0.1:0"],
               str(tmp_path_factory.mktemp("server"))).start()
    yield s
    s.stop()


@pytest.fixture
def client(server):
    import mgreg  # pylint: disable=import-outside-toplevel
    with mgreg.Client(server.address, timeout=30) as c:
        yield c


@pytest.fixture
def model():
    """A model name no other test uses (tests share the session's server)."""
    return f"t/{uuid.uuid4().hex[:12]}"


class Cli:
    def __init__(self, address, env=None):
        self.address, self.env = address, env or {}

    def __call__(self, *args, check=True, token=None):
        env = dict(os.environ, **self.env)
        env.pop("MGREG_TOKEN", None)
        if token:
            env["MGREG_TOKEN"] = token
        r = subprocess.run([CLI_BIN, "--server", self.address] + [str(a) for a in args],
                           capture_output=True, env=env, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"mgreg {' '.join(map(str, args))} exited {r.returncode}: "
                                 f"{r.stderr.decode(errors='replace')}")
        return r


@pytest.fixture
def cli(server):
    return Cli(server.address)


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def chunked_sha256_file(path):
    """The chunked SHA-256 (README), written here apart from mgreg._digest."""
    with open(path, "rb") as f:
        data = f.read()
    pieces = b"".join(hashlib.sha256(data[i:i + (1 << 20)]).digest()
                      for i in range(0, len(data), 1 << 20))
    return hashlib.sha256(pieces).hexdigest()


def tree(directory):
    """{relative path: bytes} of every file under directory."""
    out = {}
    for dirpath, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = f.read()
    return out


def copy_checkpoint(prefix, directory, name):
    """Copies the files of checkpoint `prefix` into directory as `name`.<suffix>."""
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(prefix) + "."
    for entry in os.listdir(os.path.dirname(prefix)):
        if entry.startswith(base):
            shutil.copy(os.path.join(os.path.dirname(prefix), entry),
                        os.path.join(directory, name + "." + entry[len(base):]))
    return os.path.join(directory, name)


PYTHON = sys.executable
