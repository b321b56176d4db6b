"""graph() and collection(): filtered MetaGraphDefs and one collection of the stored graph."""

import hashlib
import json
import os
import tempfile

import grpc

from . import errors
from .v1 import registry_pb2

GRAPH_OPTIONS = ("collection_list", "export_scope", "clear_devices", "strip_default_attrs",
                 "clear_extraneous_savers", "unbound_inputs_col_name", "as_text", "tags")
DEFAULT_UNBOUND_INPUTS = "unbound_inputs"

def graph_options(options):
    """registry_pb2.GraphOptions from export_meta_graph's keyword arguments."""
    unknown = sorted(set(options) - set(GRAPH_OPTIONS))
    if unknown:
        raise errors.InvalidArgumentError(
            f"unknown graph option(s) {unknown}; the options are export_meta_graph's: "
            + ", ".join(GRAPH_OPTIONS))
    o = registry_pb2.GraphOptions()
    keys = options.get("collection_list")
    if keys is not None:
        if isinstance(keys, (str, bytes)):
            raise errors.InvalidArgumentError(
                f"collection_list must be a list of keys, not the string {keys!r}; "
                f"write collection_list=[{keys!r}]")
        o.collection_list.extend(keys)
        o.has_collection_list = True
    o.export_scope = options.get("export_scope") or ""
    o.clear_devices = bool(options.get("clear_devices", False))
    o.strip_default_attrs = bool(options.get("strip_default_attrs", False))
    o.clear_extraneous_savers = bool(options.get("clear_extraneous_savers", False))
    if "unbound_inputs_col_name" in options:
        name = options["unbound_inputs_col_name"]
        if name is None:
            o.no_unbound_inputs_col = True
        elif name != DEFAULT_UNBOUND_INPUTS:
            o.unbound_inputs_col_name = name
    o.as_text = bool(options.get("as_text", False))
    tags = options.get("tags")
    if tags is not None:
        if isinstance(tags, (str, bytes)):
            raise errors.InvalidArgumentError(
                f"tags must be a list of tags, not the string {tags!r}; write tags=[{tags!r}]")
        o.tags.extend(tags)
    return o


def _stream(client, model, step, alias, options):
    """(MetaGraphInfo, bytes) of GetMetaGraph, verified against the announced SHA-256."""
    if step is not None and alias is not None:
        raise errors.InvalidArgumentError("give step or alias, not both")
    request = registry_pb2.GetMetaGraphRequest(model=model, options=options, alias=alias or "")
    if step is not None:
        request.step = step
    info, parts = None, []
    try:
        for chunk in client._stream("GetMetaGraph", request):
            if chunk.HasField("info"):
                info = chunk.info
            parts.append(chunk.data)
    except grpc.RpcError as e:
        raise client._error(e) from e
    if info is None:
        raise errors.DataLossError("the server's graph stream carried no header; retry")
    data = b"".join(parts)
    if len(data) != info.size or hashlib.sha256(data).hexdigest() != info.sha256:
        raise errors.DataLossError(
            f"the graph of {model} received {len(data)} bytes that do not match the size "
            f"({info.size}) and SHA-256 the server announced; retry")
    return info, data


def write_atomically(path, data):
    """Writes `data` to `path` through a synced temporary file renamed into place."""
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".mgreg-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def fetch(client, model, step, alias, options, filename=None):
    _, data = _stream(client, model, step, alias, graph_options(options))
    if filename is not None:
        write_atomically(filename, data)
    return data


def collection(client, model, key, step, alias, tags=None):
    # Decoded by the server, which also knows the collection kinds its config registers;
    # `tags` choose a SavedModel's MetaGraphDef.
    if isinstance(tags, (str, bytes)):
        raise errors.InvalidArgumentError(
            f"tags must be a list of tags, not the string {tags!r}; write tags=[{tags!r}]")
    request = registry_pb2.GetCollectionRequest(model=model, key=key, alias=alias or "",
                                                tags=tags or ())
    if step is not None:
        request.step = step
    return json.loads(client._unary("GetCollection", request).json)["values"]
