"""graph() with each export_meta_graph option equals `mgreg graph` with the same option;
collection() equals `mgreg collection --json` (EXPORT_SEMANTICS rules applied server-side)."""

import json

import pytest
from google.protobuf import text_format

import mgreg
from mgreg._tfproto.core.protobuf import meta_graph_pb2

CASES = [
    ({}, []),
    ({"clear_devices": True}, ["--clear-devices"]),
    ({"collection_list": ["variables", "global_step"]},
     ["--collection", "variables", "--collection", "global_step"]),
    ({"collection_list": []}, ["--no-collections"]),
    ({"export_scope": "dnn"}, ["--export-scope", "dnn"]),
    ({"strip_default_attrs": True}, ["--strip-default-attrs"]),
    ({"clear_extraneous_savers": True}, ["--clear-extraneous-savers"]),
    ({"export_scope": "dnn", "unbound_inputs_col_name": "outside"},
     ["--export-scope", "dnn", "--unbound-inputs-col", "outside"]),
    ({"export_scope": "dnn", "unbound_inputs_col_name": None},
     ["--export-scope", "dnn", "--unbound-inputs-col", ""]),
    ({"as_text": True, "clear_devices": True}, ["--as-text", "--clear-devices"]),
]


@pytest.fixture(scope="module")
def tfx_model(server, data):
    with mgreg.Client(server.address) as c:
        c.push("graph/tfx", data.tfx, progress=False)
    return "graph/tfx"


@pytest.mark.parametrize("options,flags", CASES, ids=[" ".join(f) or "verbatim"
                                                      for _, f in CASES])
def test_graph_equals_cli(client, cli, tfx_model, tmp_path, options, flags):
    got = client.graph(tfx_model, 1000, filename=tmp_path / "py.meta", **options)
    cli("graph", tfx_model, "--step", 1000, *flags, "-o", tmp_path / "cli.meta")
    assert got == (tmp_path / "cli.meta").read_bytes()
    assert (tmp_path / "py.meta").read_bytes() == got


def test_graph_options_do_what_tensorflow_does(client, data, tfx_model):
    assert client.graph(tfx_model) == open(data.tfx + ".meta", "rb").read()
    mg = meta_graph_pb2.MetaGraphDef.FromString(client.graph(tfx_model, clear_devices=True))
    assert sum(1 for n in mg.graph_def.node if n.device) == 0
    mg = meta_graph_pb2.MetaGraphDef.FromString(
        client.graph(tfx_model, collection_list=["variables", "global_step"]))
    assert sorted(mg.collection_def) == ["global_step", "variables"]
    mg = meta_graph_pb2.MetaGraphDef.FromString(client.graph(tfx_model, collection_list=[]))
    assert len(mg.collection_def) == 0
    mg = meta_graph_pb2.MetaGraphDef.FromString(client.graph(tfx_model, export_scope="dnn"))
    assert len(mg.graph_def.node) == 231
    text = client.graph(tfx_model, as_text=True, collection_list=[]).decode()
    assert text.startswith("meta_info_def {") and text.count("\n  node {\n") == 2502
    small = client.graph(tfx_model, as_text=True, export_scope="dnn").decode()
    assert len(text_format.Parse(small, meta_graph_pb2.MetaGraphDef()).graph_def.node) == 231


def test_graph_rejects_bad_options(client, tfx_model):
    with pytest.raises(mgreg.InvalidArgumentError, match="collection_list=\\['variables'\\]"):
        client.graph(tfx_model, collection_list="variables")
    with pytest.raises(mgreg.InvalidArgumentError, match="clear_device"):
        client.graph(tfx_model, clear_device=True)
    with pytest.raises(mgreg.NotFoundError):
        client.graph(tfx_model, 999)


@pytest.mark.parametrize("case", ["tfx", "tf2onnx"])
def test_every_collection_equals_cli_json(client, cli, data, model, case):
    client.push(model, getattr(data, case), step=5, progress=False)
    with open(getattr(data, case) + ".meta", "rb") as f:
        keys = sorted(meta_graph_pb2.MetaGraphDef.FromString(f.read()).collection_def)
    assert keys
    for key in keys:
        expected = json.loads(cli("collection", model, key, "--json").stdout)
        assert client.collection(model, key) == expected["values"], key


def test_missing_collection_lists_the_keys(client, tfx_model):
    with pytest.raises(mgreg.NotFoundError, match="its collections are: \\[.*variables"):
        client.collection(tfx_model, "no_such_key")
