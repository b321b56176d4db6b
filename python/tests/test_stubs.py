"""The checked-in stubs match proto/ (drift test), import beside a real TensorFlow's
checkpoint_state_pb2 in either order on both protobuf backends, and create no top-level
`tensorflow` or `grpc` package."""

import importlib.util
import os
import re
import subprocess

import pytest

from conftest import PYTHON, ROOT

SRC = os.path.join(ROOT, "python", "src")


def gen_protos():
    spec = importlib.util.spec_from_file_location(
        "gen_protos", os.path.join(ROOT, "python", "tools", "gen_protos.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stubs_match_the_protos():
    problems = gen_protos().drifted()
    assert problems == [], ("stubs drifted from proto/; run /usr/bin/python3 "
                            "python/tools/gen_protos.py and commit the result")


def test_the_rewrite_covers_every_reference():
    g = gen_protos()
    for dirpath, _, files in os.walk(os.path.join(ROOT, "proto")):
        for name in files:
            if name.endswith(".proto") and ("/proto/tensorflow" in dirpath
                                            or dirpath.endswith("/proto/mgreg/v1")):
                with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                    text = g.rewrite(f.read())
                code = "\n".join(l.split("//")[0] for l in text.splitlines())
                assert not re.search(r"\btensorflow[./;]", code), name


def test_no_top_level_tensorflow_or_grpc_package():
    assert sorted(e for e in os.listdir(SRC) if not e.endswith(".egg-info")) == ["mgreg"]


REAL_TF = """
import os, sys
sys.path.insert(0, sys.argv[1])
order = sys.argv[2]
if order == "mgreg-first":
    import mgreg
import tensorflow.python.training.checkpoint_state_pb2 as tf_state
if order == "tf-first":
    import mgreg
from google.protobuf.internal import api_implementation
from mgreg._tfproto.python.training import checkpoint_state_pb2 as ours
assert tf_state.CheckpointState.DESCRIPTOR.full_name == "tensorflow.CheckpointState"
assert ours.CheckpointState.DESCRIPTOR.full_name == "mgreg.tfproto.CheckpointState"
wire = tf_state.CheckpointState(model_checkpoint_path="m-1").SerializeToString()
assert ours.CheckpointState.FromString(wire).model_checkpoint_path == "m-1"
print(api_implementation.Type())
"""


@pytest.mark.parametrize("backend", ["cpp", "python"])
@pytest.mark.parametrize("order", ["mgreg-first", "tf-first"])
def test_imports_beside_tensorflows_own_checkpoint_state(tmp_path, backend, order):
    # A stand-in for pip TensorFlow: its checkpoint_state.proto under its real name.
    subprocess.run(["protoc", "-I", os.path.join(ROOT, "proto"), f"--python_out={tmp_path}",
                    "tensorflow/python/training/checkpoint_state.proto"], check=True)
    for d in ("tensorflow", "tensorflow/python", "tensorflow/python/training"):
        (tmp_path / d / "__init__.py").write_text("")
    env = dict(os.environ, PYTHONPATH=str(tmp_path),
               PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=backend)
    r = subprocess.run([PYTHON, "-c", REAL_TF, SRC, order], env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == backend
