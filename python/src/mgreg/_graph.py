"""graph() and collection(): filtered MetaGraphDefs and one collection of the stored graph."""

import base64
import hashlib
import json
import math
import os
import tempfile
import threading

import grpc
from google.protobuf import json_format, message, text_format

from . import errors
from ._tfproto.core.protobuf import control_flow_pb2, meta_graph_pb2, queue_runner_pb2
from ._tfproto.core.protobuf import saver_pb2
from ._tfproto.core.framework import variable_pb2
from .v1 import registry_pb2

GRAPH_OPTIONS = ("collection_list", "export_scope", "clear_devices", "strip_default_attrs",
                 "clear_extraneous_savers", "unbound_inputs_col_name", "as_text")
DEFAULT_UNBOUND_INPUTS = "unbound_inputs"
_CACHE_ENTRIES = 4
_cache = {}  # graph_sha256 -> verbatim bytes (a few, most recent last)
_cache_lock = threading.Lock()

# The 11 collection keys with a registered to_proto (EXPORT_SEMANTICS R15, D5).
_REGISTERED = dict(
    **{k: variable_pb2.VariableDef for k in (
        "variables", "trainable_variables", "local_variables", "model_variables",
        "moving_average_variables", "global_step", "metric_variables")},
    savers=saver_pb2.SaverDef, queue_runners=queue_runner_pb2.QueueRunnerDef,
    cond_context=control_flow_pb2.CondContextDef,
    while_context=control_flow_pb2.WhileContextDef)


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


def verbatim(client, model, step, alias):
    """The stored .meta bytes of a step, from a small cache keyed by their SHA-256."""
    checkpoint = client._get_proto(model, step, alias)
    if not checkpoint.graph_sha256:
        raise errors.NotFoundError(
            f"step {checkpoint.step} of {model} has no MetaGraph (.meta); push one with it")
    with _cache_lock:
        data = _cache.get(checkpoint.graph_sha256)
    if data is None:
        _, data = _stream(client, model, checkpoint.step, None, registry_pb2.GraphOptions())
        with _cache_lock:
            _cache[checkpoint.graph_sha256] = data
            while len(_cache) > _CACHE_ENTRIES:
                del _cache[next(iter(_cache))]
    return data


def parse_metagraph(data):
    """A MetaGraphDef from binary or text-format bytes."""
    mg = meta_graph_pb2.MetaGraphDef()
    try:
        mg.ParseFromString(data)
        if len(mg.graph_def.node) or mg.HasField("meta_info_def"):
            return mg
    except message.DecodeError:
        pass
    mg = meta_graph_pb2.MetaGraphDef()
    try:
        text_format.Merge(data.decode("utf-8"), mg)
        return mg
    except (UnicodeDecodeError, text_format.ParseError) as e:
        raise errors.InvalidArgumentError(
            f"the stored graph is neither a binary nor a text MetaGraphDef ({e})") from e


def _bytes_value(b):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(b).decode()


def _float_value(v):
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return json.loads(f"{v:.9g}")  # float32 printed as the CLI prints it


def collection_values(mg, key):
    """The values of one collection, as `mgreg collection --json` renders them."""
    if key not in mg.collection_def:
        keys = ", ".join(sorted(mg.collection_def))
        raise errors.NotFoundError(
            f"the graph has no collection '{key}'; its collections are: [{keys}]")
    c = mg.collection_def[key]
    kind = c.WhichOneof("kind")
    if kind == "node_list":
        return [_bytes_value(v.encode()) for v in c.node_list.value]
    if kind == "bytes_list":
        out = []
        cls = _REGISTERED.get(key)
        for v in c.bytes_list.value:
            if cls is not None:
                try:
                    out.append(json_format.MessageToDict(cls.FromString(v),
                                                         preserving_proto_field_name=True))
                    continue
                except message.DecodeError:
                    pass
            out.append(_bytes_value(v))
        return out
    if kind == "int64_list":
        return list(c.int64_list.value)
    if kind == "float_list":
        return [_float_value(v) for v in c.float_list.value]
    if kind == "any_list":
        return [{"type_url": a.type_url, "value": base64.b64encode(a.value).decode()}
                for a in c.any_list.value]
    return []


def collection(client, model, key, step, alias):
    return collection_values(parse_metagraph(verbatim(client, model, step, alias)), key)
