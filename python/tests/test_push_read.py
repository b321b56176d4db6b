"""Push through Python and read back through the CLI, and the reverse, byte-identical."""

import json
import os

import pytest

import mgreg
from conftest import chunked_sha256_file, copy_checkpoint, tree


def local_files(prefix):
    d, base = os.path.dirname(prefix), os.path.basename(prefix) + "."
    return {e[len(base):]: os.path.join(d, e) for e in os.listdir(d) if e.startswith(base)
            and e[len(base):] != "checkpoint"}


@pytest.mark.parametrize("case", ["tfx", "t2t", "tictactoe", "tf2onnx"])
def test_push_then_cli_restores_the_same_bytes(client, cli, data, model, tmp_path, case):
    prefix = getattr(data, case)
    step = 7 if case == "tf2onnx" else None
    pushed = client.push(model, prefix, step=step, metadata={"loss": 0.25}, progress=False)
    files = local_files(prefix)
    assert {f.name for f in pushed.files} == set(files)
    for f in pushed.files:
        assert f.chunked_sha256 == chunked_sha256_file(files[f.name])
    assert pushed.metadata == {"loss": "0.25"}
    assert client.latest(model) == pushed
    assert client.latest_step(model) == pushed.step
    assert client.get(model, pushed.step) == pushed
    assert client.list_steps(model) == [pushed.step]
    assert model in [m.name for m in client.list_models()]
    out = tmp_path / "cli"
    cli("restore", model, out)
    for name, path in files.items():
        with open(path, "rb") as f:
            assert (out / f"{pushed.prefix_name}.{name}").read_bytes() == f.read(), name
    latest = json.loads(cli("latest", model, "--json").stdout)
    assert int(latest["step"]) == pushed.step


def test_cli_push_then_python_restores_the_same_tree(client, cli, data, model, tmp_path):
    cli("push", model, data.t2t)
    got = client.restore(model, tmp_path / "py", progress=False)
    cli("restore", model, tmp_path / "cli")
    assert got == str(tmp_path / "py" / "model.ckpt-1")
    assert tree(tmp_path / "py") == tree(tmp_path / "cli")


def test_identical_push_is_a_noop_and_changed_content_needs_overwrite(client, data, model,
                                                                       tmp_path):
    first = client.push(model, data.tictactoe, progress=False)
    again = client.push(model, data.tictactoe, progress=False)
    assert again.revision == first.revision
    assert client.last_push_stats.bytes_sent == 0
    changed = copy_checkpoint(data.tfx, tmp_path, "ckpt-19")
    with pytest.raises(mgreg.AlreadyExistsError) as e:
        client.push(model, changed, progress=False)
    assert "overwrite" in e.value.message
    assert client.get(model, 19).revision == first.revision  # nothing lost
    replaced = client.push(model, changed, overwrite=True, progress=False)
    assert replaced.revision > first.revision
    assert {f.name for f in replaced.files} == {"index", "data-00000-of-00001", "meta"}


def test_overwriting_a_pinned_aliased_step_needs_force(client, data, model, tmp_path):
    first = client.push(model, data.tictactoe, progress=False)
    client.pin(model, 19)
    aliased = client.set_alias(model, "production", 19)
    changed = copy_checkpoint(data.tfx, tmp_path, "ckpt-19")
    with pytest.raises(mgreg.errors.FailedPreconditionError) as e:
        client.push(model, changed, overwrite=True, progress=False)
    assert "pinned and named by alias 'production'" in e.value.message
    assert "force=True" in e.value.message
    assert client.get(model, alias="production").revision == first.revision
    with pytest.raises(mgreg.errors.InvalidArgumentError, match="overwrite=True"):
        client.push(model, changed, force=True, progress=False)
    replaced = client.push(model, changed, overwrite=True, force=True, progress=False)
    assert replaced.pinned
    assert client.get(model, alias="production").revision == replaced.revision
    watch = client.watch(model, since_revision=aliased.revision)
    try:
        event = next(iter(watch))
    finally:
        watch.cancel()
    assert (event.type, event.step, event.replaced) == ("COMMITTED", 19, True)


def test_retention_pins_aliases_and_delete(client, data, model, tmp_path):
    for step in (1, 2, 3):
        client.push(model, copy_checkpoint(data.tictactoe, tmp_path, f"ckpt-{step}"),
                    progress=False)
    m = client.set_alias(model, "production", 1)
    assert m.aliases == {"production": 1}
    assert client.get(model, alias="production").step == 1
    assert client.pin(model, 2).pinned
    m = client.set_retention(model, max_to_keep=1)
    assert m.max_to_keep == 1
    with pytest.raises(mgreg.errors.NotFoundError, match="does not exist"):
        client.set_retention(model + "-typo", max_to_keep=1)
    assert client.set_retention(model + "-later", max_to_keep=2,
                                allow_missing=True).max_to_keep == 2
    assert client.list_steps(model) == [1, 2, 3]  # aliased and pinned steps are kept
    client.remove_alias(model, "production")
    assert client.list_steps(model) == [2, 3]
    assert client.delete(model, 3) >= 0
    assert client.list_steps(model) == [2]
    assert client.model(model).aliases == {}


def test_state_and_list_variables_match_the_cli(client, cli, data, model):
    client.push(model, data.tfx, progress=False)
    from google.protobuf import text_format  # pylint: disable=import-outside-toplevel
    assert text_format.MessageToString(client.state(model)) == cli("state", model).stdout.decode()
    tensors = json.loads(cli("inspect", model, "--json").stdout)
    names = client.list_variables(model, verify=True)
    assert len(names) == len(tensors["tensors"]) > 0
    assert names == [(t["name"], [int(d) for d in t.get("shape", [])])
                     for t in tensors["tensors"]]


def test_health(client):
    assert client.health() == "SERVING"
