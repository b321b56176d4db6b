"""Plain return types (frozen dataclasses), so callers never depend on protobuf classes."""

import dataclasses
import datetime
from typing import Dict, Optional, Tuple


_SAVED_MODEL = 2  # mgreg.v1.StepKind.SAVED_MODEL


def _time(ts):
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime().replace(tzinfo=datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class FileInfo:
    """One file of a step: `name` is the suffix after the prefix ("index", "meta", ...).
    `chunked_sha256` is the digest restores verify (README: "Checking a restored file by
    hand"); `sha256`, sha256sum's, is there for files stored before it (or pushed with it)."""
    name: str
    size: int
    sha256: str
    chunked_sha256: str = ""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A committed step. `prefix_name` is what TensorFlow names its files' prefix."""
    model: str
    step: int
    basename: str
    files: Tuple[FileInfo, ...]
    commit_time: Optional[datetime.datetime]
    metadata: Dict[str, str]
    graph_sha256: str
    revision: int
    total_bytes: int
    pinned: bool
    preserved: bool
    aliases: Tuple[str, ...]
    proto: object = dataclasses.field(repr=False, compare=False)
    # "checkpoint" or "saved_model" (a SavedModel version: files named by their paths).
    kind: str = "checkpoint"

    @property
    def prefix_name(self):
        """'<basename>-<step>', e.g. 'model.ckpt-1000'."""
        return f"{self.basename}-{self.step}"

    @classmethod
    def from_proto(cls, p):
        return cls(model=p.model, step=p.step, basename=p.basename,
                   files=tuple(FileInfo(f.name, f.size, f.sha256, f.chunked_sha256)
                               for f in p.files),
                   commit_time=_time(p.commit_time), metadata=dict(p.metadata),
                   graph_sha256=p.graph_sha256, revision=p.revision,
                   total_bytes=p.total_bytes, pinned=p.pinned, preserved=p.preserved,
                   aliases=tuple(p.aliases), proto=p,
                   kind="saved_model" if p.kind == _SAVED_MODEL else "checkpoint")


@dataclasses.dataclass(frozen=True)
class ModelSummary:
    """A model in list_models(): its name, latest step and number of steps."""
    name: str
    latest_step: int
    checkpoint_count: int


@dataclasses.dataclass(frozen=True)
class Model:
    """A model's settings: retention (TF CheckpointManager's names) and aliases."""
    name: str
    latest_step: int
    checkpoint_count: int
    max_to_keep: int
    keep_checkpoint_every_n_hours: float
    aliases: Dict[str, int]
    revision: int

    @classmethod
    def from_proto(cls, p):
        return cls(name=p.name, latest_step=p.latest_step, checkpoint_count=p.checkpoint_count,
                   max_to_keep=p.retention.max_to_keep,
                   keep_checkpoint_every_n_hours=p.retention.keep_every_n_hours,
                   aliases=dict(p.aliases), revision=p.revision)


@dataclasses.dataclass(frozen=True)
class Event:
    """A watch event: type is "COMMITTED", "DELETED", "ALIAS_SET", "ALIAS_REMOVED" or
    "PROGRESS" (every event up to `revision` delivered). `replaced`: a COMMITTED that
    overwrote the step with other content."""
    type: str
    model: str
    step: int
    alias: str
    revision: int
    time: Optional[datetime.datetime]
    replaced: bool = False

    @classmethod
    def from_proto(cls, p):
        from .v1 import registry_pb2  # pylint: disable=import-outside-toplevel
        return cls(type=registry_pb2.WatchEvent.Type.Name(p.type), model=p.model, step=p.step,
                   alias=p.alias, revision=p.revision, time=_time(p.time),
                   replaced=p.replaced)


@dataclasses.dataclass(frozen=True)
class UploadFile:
    """A file of an open upload and the bytes the server holds of it."""
    name: str
    size: int
    sha256: str
    held_bytes: int
    writing: bool
    chunked_sha256: str = ""


@dataclasses.dataclass(frozen=True)
class UploadStatus:
    """The state of an open upload (GetUpload)."""
    upload_id: str
    model: str
    step: int
    files: Tuple[UploadFile, ...]
    already_committed: bool
    chunk_bytes: int

    @property
    def missing(self):
        """Files not complete yet, or being written."""
        return tuple(f for f in self.files if f.held_bytes < f.size or f.writing)

    @classmethod
    def from_proto(cls, p):
        return cls(upload_id=p.upload_id, model=p.model, step=p.step,
                   files=tuple(UploadFile(f.file.name, f.file.size, f.file.sha256,
                                          f.held_bytes, f.writing, f.file.chunked_sha256)
                               for f in p.files),
                   already_committed=p.already_committed, chunk_bytes=p.chunk_bytes)


@dataclasses.dataclass
class PushStats:
    """What the last push sent: bytes over the network, bytes the server already held
    (whole files, and chunks inside changed files), streams resumed after a cut, and
    uploads begun again because the server had dropped the first (a restart)."""
    bytes_sent: int = 0
    bytes_deduplicated_files: int = 0
    bytes_deduplicated_chunks: int = 0
    resumes: int = 0
    restarts: int = 0


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One tensor of a checkpoint's .index (InspectCheckpoint)."""
    name: str
    dtype: str
    shape: Tuple[int, ...]
    shard: int
    offset: int
    size: int
    verification: str
