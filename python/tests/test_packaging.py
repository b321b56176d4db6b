"""The README's install line: a venv made with --system-site-packages from Debian's
Python, `pip install --no-index --no-build-isolation ./python`, no package index."""

import glob
import os
import shutil
import subprocess

from conftest import ROOT


def test_offline_install_into_a_venv_and_import_from_outside_the_tree(tmp_path):
    src = tmp_path / "python"  # a copy: pip's build must not write into the checkout
    shutil.copytree(os.path.join(ROOT, "python"), src,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build",
                                                  ".pytest_cache"))
    venv = tmp_path / "venv"
    # Without its own pip (ensurepip costs seconds): Debian's pip, the same 23.0.1 that
    # ensurepip would put there, installs into it through --python.
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", "--without-pip",
                    venv], check=True)
    subprocess.run(["/usr/bin/python3", "-m", "pip", "--python", venv / "bin" / "python",
                    "--disable-pip-version-check", "-q", "install", "--no-index",
                    "--no-build-isolation", "./python"], check=True, cwd=tmp_path)
    (site,) = glob.glob(str(venv / "lib" / "python3*" / "site-packages"))
    installed = os.path.join(site, "mgreg")
    pb2 = glob.glob(os.path.join(installed, "**", "*_pb2.py"), recursive=True)
    assert len(pb2) == 28
    for name in ("v1/registry_pb2_grpc.py", "v1/registry_pb2.pyi", "py.typed"):
        assert os.path.exists(os.path.join(installed, name)), name
    assert not os.path.exists(os.path.join(site, "tensorflow"))
    assert not os.path.exists(os.path.join(site, "grpc"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([venv / "bin" / "python", "-c",
                        "import mgreg, grpc, google.protobuf; print(mgreg.__file__)"],
                       cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(venv))
