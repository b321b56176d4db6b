"""Local checkpoint files: prefix parsing, file discovery, digests (as client/client.cc)."""

import hashlib
import os
import re

from . import _digest, errors

READ_BYTES = 8 << 20
_DATA_RE = re.compile(r"^data-(\d{5,})-of-(\d{5,})$")
_STEP_RE = re.compile(r"^(.*)-(\d+)$")


def is_data_name(name):
    """True for 'data-NNNNN-of-MMMMM' (at least five digits each, NNNNN < MMMMM)."""
    m = _DATA_RE.match(name)
    return bool(m) and int(m.group(1)) < int(m.group(2))


def is_file_name(name):
    return name in ("index", "meta") or is_data_name(name)


def parse_prefix(prefix):
    """(directory, basename, step or None) of a checkpoint prefix, as ParseCheckpointPrefix.

    Accepts a prefix ('dir/model.ckpt-1000') or one of its files ('....index', '.meta',
    '.data-00000-of-00001'). Raises InvalidArgumentError for a malformed prefix."""
    prefix = os.fspath(prefix)
    if not prefix:
        raise errors.InvalidArgumentError(
            "checkpoint prefix is empty; give one such as 'dir/model.ckpt-1000'")
    if prefix.endswith("/"):
        raise errors.InvalidArgumentError(
            f"checkpoint prefix '{prefix}' ends in '/'; give the prefix of the files in that "
            f"directory, such as '{prefix}model.ckpt-1000'")
    p = prefix
    dot = p.rfind(".data-")
    if dot >= 0 and is_data_name(p[dot + 1:]):
        p = p[:dot]
    elif p.endswith(".index"):
        p = p[:-6]
    elif p.endswith(".meta"):
        p = p[:-5]
    directory, _, base = p.rpartition("/")
    if "/" in p and not directory:
        directory = "/"
    if not base:
        raise errors.InvalidArgumentError(
            f"checkpoint prefix '{prefix}' has no file name before its suffix; give one "
            "such as 'dir/model.ckpt-1000'")
    m = _STEP_RE.match(base)
    if m and m.group(2).isdigit() and m.group(2).isascii():
        if not m.group(1):
            raise errors.InvalidArgumentError(
                f"checkpoint prefix '{prefix}' has nothing before '-<step>'; give a name "
                f"such as 'model.ckpt{base}'")
        step = int(m.group(2))
        if step >= 1 << 63:
            raise errors.InvalidArgumentError(
                f"checkpoint prefix '{prefix}' has step {m.group(2)}, which does not fit in "
                "a signed 64-bit integer; use a smaller step")
        return directory, m.group(1), step
    return directory, base, None


def find_files(prefix):
    """(directory, basename, step, {name: path}) of the checkpoint saved at `prefix`.

    Raises InvalidArgumentError for a malformed prefix, FileNotFoundError naming what is
    missing when there is no .index or no data file."""
    directory, basename, step = parse_prefix(prefix)
    directory = directory or "."
    stem_name = f"{basename}-{step}" if step is not None else basename
    where = os.path.join(directory, stem_name)
    try:
        entries = os.listdir(directory)
    except OSError as e:
        raise FileNotFoundError(
            f"no checkpoint at '{prefix}': cannot list directory '{directory}' "
            f"({e.strerror}) to find '{where}.index'") from e
    files = {}
    stem = stem_name + "."
    for entry in entries:
        if entry.startswith(stem) and is_file_name(entry[len(stem):]):
            files[entry[len(stem):]] = os.path.join(directory, entry)
    if "index" not in files:
        raise FileNotFoundError(
            f"no checkpoint at '{prefix}': '{where}.index' does not exist; give the prefix "
            "TensorFlow saved, e.g. dir/model.ckpt-1000 (what Saver.save returned)")
    if not any(is_data_name(n) for n in files):
        raise FileNotFoundError(
            f"no checkpoint at '{prefix}': no '{where}.data-NNNNN-of-MMMMM' file next to "
            "its .index; the checkpoint is incomplete")
    return directory, basename, step, dict(sorted(files.items()))


def digest_file(path, kind="chunked"):
    """(size, hex digest) of a file, read in 8 MiB pieces: its chunked SHA-256
    (_digest.py, what pushes announce), or with kind="sha256" its whole-file SHA-256."""
    h = _digest.ChunkedSha256() if kind == "chunked" else hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(READ_BYTES)
            if not block:
                break
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


def chunk_digests(path, chunk_bytes, stride=1):
    """Raw SHA-256 of every `stride`-th chunk of a file ("" for those not hashed)."""
    out = []
    with open(path, "rb") as f:
        index = 0
        while True:
            if index % stride == 0:
                f.seek(index * chunk_bytes)
                block = f.read(chunk_bytes)
                if not block:
                    break
                out.append(hashlib.sha256(block).digest())
            else:
                if f.seek(0, os.SEEK_END) <= index * chunk_bytes:
                    break
                out.append(b"")
            index += 1
    return out


def file_matches(path, info):
    """True if `path` holds a FileInfo's size and digest (its chunked SHA-256 when the
    server gives one, else its whole-file SHA-256)."""
    try:
        if os.path.getsize(path) != info.size:
            return False
        if info.chunked_sha256:
            return digest_file(path)[1] == info.chunked_sha256
        return digest_file(path, kind="sha256")[1] == info.sha256
    except OSError:
        return False
