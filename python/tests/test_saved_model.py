"""SavedModels from Python (issue 15): push of a version directory, its kind, graph and
collection by tags (equal to the C++ CLI, rules D1 and D7 of EXPORT_SEMANTICS.md),
restore_saved_model byte-identical into TF Serving's base path with keep, the multi-writer
upload, and the refusals (not a SavedModel, links out of the directory, hostile names)."""

import os
import shutil

import pytest

import mgreg
from mgreg import _saved_model
from mgreg._tfproto.core.protobuf import saved_model_pb2
from mgreg.v1 import registry_pb2
from conftest import tree


def _version(src, directory, version, note):
    """A copy of SavedModel `src` as directory/<version> with assets.extra/version."""
    dst = os.path.join(directory, str(version))
    shutil.copytree(src, dst)
    os.makedirs(os.path.join(dst, "assets.extra"), exist_ok=True)
    with open(os.path.join(dst, "assets.extra", "version"), "w", encoding="utf-8") as f:
        f.write(note)
    return dst


def test_every_real_saved_model_pushes_exports_by_tags_and_restores_identical(
        client, cli, data, model, tmp_path):
    for i, src in enumerate(data.saved_models):
        m = f"{model}-{i}"
        step = None if os.path.basename(src).isdigit() else 7
        pushed = client.push(m, src, step=step, progress=False)
        assert pushed.kind == "saved_model"
        assert pushed.step == (step or 123)
        assert {f.name for f in pushed.files} == set(tree(src))
        assert [c.kind for c in client.list_checkpoints(m)] == ["saved_model"]
        # No option: the stored saved_model.pb (D1); by tags, what the C++ CLI gets (D7).
        with open(os.path.join(src, "saved_model.pb"), "rb") as f:
            assert client.graph(m) == f.read()
        stored = client.graph(m)
        tag_sets = [list(mg.meta_info_def.tags)
                    for mg in saved_model_pb2.SavedModel.FromString(stored).meta_graphs]
        for tags in tag_sets:
            for flag, option in ((None, {}), ("--clear-devices", {"clear_devices": True}),
                                 ("--strip-default-attrs", {"strip_default_attrs": True})):
                got = client.graph(m, tags=tags, **option)
                out = tmp_path / f"cli-{i}.pb"
                cli("graph", m, "--tags", ",".join(tags), "-o", out, *([flag] if flag else []))
                assert got == out.read_bytes()
        base = tmp_path / "models" / m
        path = client.restore_saved_model(m, base, progress=False)
        assert path == os.path.join(base, str(pushed.step))
        assert tree(path) == tree(src)
        assert os.listdir(base) == [str(pushed.step)]


def test_collection_by_tags_and_restore_keeps_the_newest_versions(client, data, model,
                                                                  tmp_path):
    src = data.saved_models[2]
    for v in (1, 2, 3):
        client.push(model, _version(src, tmp_path / "export", v, str(v)), progress=False)
    assert client.collection(model, "saved_model_main_op", tags=["serve"]) == \
        client.collection(model, "saved_model_main_op")
    with pytest.raises(mgreg.NotFoundError, match=r"\[serve\]"):
        client.collection(model, "saved_model_main_op", tags=["train"])
    base = tmp_path / "models"
    (base / "other").mkdir(parents=True)
    for v in (1, 2, 3):
        client.restore_saved_model(model, base, v, keep=2, progress=False)
    assert sorted(os.listdir(base)) == ["2", "3", "other"]
    # restore() of a SavedModel step does the same; an alias moved back is served.
    client.set_alias(model, "production", 2)
    client.restore(model, base, alias="production", progress=False)
    client.restore_saved_model(model, base, alias="production", remove_newer=True,
                               progress=False)
    assert sorted(os.listdir(base)) == ["2", "other"]
    assert (base / "2" / "assets.extra" / "version").read_text() == "2"
    with pytest.raises(mgreg.InvalidArgumentError, match="restored as stored"):
        client.restore(model, base, clear_devices=True, progress=False)


def test_push_refuses_what_is_neither_and_links_out_of_the_directory(client, data, model,
                                                                     tmp_path):
    empty = tmp_path / "empty" / "4"
    empty.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="saved_model.pbtxt"):
        client.push(model, empty, progress=False)
    linked = _version(data.saved_models[0], tmp_path / "linked", 5, "5")
    (tmp_path / "secret").write_text("s")
    os.symlink(tmp_path / "secret", os.path.join(linked, "assets", "secret"))
    with pytest.raises(mgreg.InvalidArgumentError, match="outside the SavedModel directory"):
        client.push(model, linked, progress=False)
    os.unlink(os.path.join(linked, "assets", "secret"))
    client.push(model, linked, progress=False)
    with open(os.path.join(linked, "assets.extra", "version"), "w", encoding="utf-8") as f:
        f.write("changed")
    with pytest.raises(mgreg.AlreadyExistsError):
        client.push(model, linked, progress=False)
    assert client.push(model, linked, overwrite=True, progress=False).step == 5
    with pytest.raises(mgreg.InvalidArgumentError, match="step=N"):
        client.push(model, _version(data.saved_models[0], tmp_path / "x", "unnamed", "u"),
                    progress=False)


def test_multi_writer_upload_of_a_saved_model(client, data, model, tmp_path):
    src = _version(data.saved_models[0], tmp_path / "export", 31, "31")
    with client.begin_upload(model, 31, saved_model=src) as up:
        _, files = _saved_model.find_files(src)
        for name, path in files.items():
            assert client.upload(up.id).put(path, name=name, progress=False)
        committed = up.commit()
    assert committed.kind == "saved_model"
    path = client.restore_saved_model(model, tmp_path / "base", progress=False)
    assert tree(path) == tree(src)


@pytest.mark.parametrize("name", ["../evil", "variables/../../evil", "/etc/evil", "a//b",
                                  "./x"])
def test_hostile_names_are_refused_before_anything_is_written(name, tmp_path):
    checkpoint = registry_pb2.Checkpoint(model="m", step=7, kind=registry_pb2.SAVED_MODEL)
    checkpoint.files.add(name="saved_model.pb", size=1, sha256="0" * 64)
    checkpoint.files.add(name=name, size=1, sha256="0" * 64)
    with pytest.raises(mgreg.InvalidArgumentError, match="nothing was written"):
        _saved_model.restore_version(None, checkpoint, str(tmp_path), keep=0,
                                     remove_newer=False, progress=False, download=None)
    assert os.listdir(tmp_path) == []
