"""SavedModel version directories (as client/saved_model_dir.cc): the files of one to push,
and TF Serving's base path a version is restored into, staged under a hidden name and
renamed into place whole. Every path written or removed lies inside the base path."""

import os
import re
import shutil
import tempfile

from . import _local, errors

SAVED_MODEL_PB = "saved_model.pb"
SAVED_MODEL_PBTXT = "saved_model.pbtxt"
_VERSION_RE = re.compile(r"^[0-9]{1,18}$")
_VARIABLES = "variables/variables."


def is_saved_model_dir(path):
    """True if `path` is a directory holding saved_model.pb or saved_model.pbtxt."""
    return os.path.isdir(path) and (os.path.exists(os.path.join(path, SAVED_MODEL_PB)) or
                                    os.path.exists(os.path.join(path, SAVED_MODEL_PBTXT)))


def version_of(name):
    """The version a directory name stands for ("00000123" -> 123), or None."""
    return int(name) if _VERSION_RE.match(name) else None


def check_relative(name, what):
    """InvalidArgumentError unless `name` is a relative path that stays inside the
    directory it is joined to (as metagraph/relative_path.h)."""
    bad = (not name or name.startswith("/") or name.endswith("/") or
           any(seg in ("", ".", "..") or len(seg.encode()) > 255 for seg in name.split("/")) or
           any(ord(c) < 0x20 or ord(c) == 0x7f for c in name))
    if bad:
        raise errors.InvalidArgumentError(
            f"{what} {name!r} is not a relative path inside the version directory (absolute, "
            "'..', '.', an empty segment or a control character); nothing was written")


def find_files(directory):
    """(version or None, {name: path}) of a local SavedModel version directory: every file
    of the tree, named by its path inside it. Symbolic links out of the directory, links to
    directories and special files are refused (InvalidArgumentError); FileNotFoundError
    names the files looked for when it is not a SavedModel."""
    directory = os.path.normpath(os.fspath(directory))
    if not is_saved_model_dir(directory):
        raise FileNotFoundError(
            f"no SavedModel at '{directory}': neither "
            f"'{os.path.join(directory, SAVED_MODEL_PB)}' nor "
            f"'{os.path.join(directory, SAVED_MODEL_PBTXT)}' exists")
    root = os.path.realpath(directory)
    files = {}
    for parent, dirs, names in os.walk(directory):
        for d in list(dirs):
            p = os.path.join(parent, d)
            if os.path.islink(p):
                target = os.path.realpath(p)
                if os.path.commonpath([root, target]) != root:
                    raise errors.InvalidArgumentError(
                        f"'{p}' is a symbolic link to '{os.readlink(p)}', outside the "
                        f"SavedModel directory '{directory}'; copy the file into the "
                        "directory instead of linking to it")
                raise errors.InvalidArgumentError(
                    f"'{p}' is a symbolic link to a directory; replace it by the directory "
                    "itself (a SavedModel step stores files by their paths)")
        for n in names:
            p = os.path.join(parent, n)
            name = os.path.relpath(p, directory).replace(os.sep, "/")
            check_relative(name, f"the file name in SavedModel '{directory}'")
            if os.path.islink(p):
                target = os.path.realpath(p)
                if os.path.commonpath([root, target]) != root:
                    raise errors.InvalidArgumentError(
                        f"'{p}' is a symbolic link to '{os.readlink(p)}', outside the "
                        f"SavedModel directory '{directory}'; copy the file into the "
                        "directory instead of linking to it")
            if not os.path.isfile(p):
                raise errors.InvalidArgumentError(
                    f"'{p}' is neither a file nor a directory (a socket, fifo or device); "
                    "remove it from the SavedModel directory")
            files[name] = p
    variables = [n for n in files if n.startswith(_VARIABLES)]
    if variables and _VARIABLES + "index" not in files:
        raise FileNotFoundError(
            f"SavedModel '{directory}' has variables but no "
            f"'{os.path.join(directory, 'variables', 'variables.index')}'; copy the whole "
            "variables/ directory TensorFlow wrote")
    if variables and not any(_local.is_data_name(n[len(_VARIABLES):]) for n in variables):
        raise FileNotFoundError(
            f"SavedModel '{directory}' has a variables index but no "
            "variables/variables.data-NNNNN-of-MMMMM shard; copy the whole variables/ "
            "directory TensorFlow wrote")
    return version_of(os.path.basename(directory)), dict(sorted(files.items()))


def file_paths(root, checkpoint):
    """{name: local path below root} of a SavedModel step, every name checked first."""
    whose = f"step {checkpoint.step} of model '{checkpoint.model}'"
    if checkpoint.step < 0:
        raise errors.InvalidArgumentError(
            f"the server answered a negative step ({checkpoint.step}) for model "
            f"'{checkpoint.model}'; nothing was written")
    out = {}
    for f in checkpoint.files:
        check_relative(f.name, f"the server's file name for {whose}")
        if f.name in out:
            raise errors.InvalidArgumentError(
                f"the server's answer for {whose} names file '{f.name}' twice; nothing was "
                "written")
        out[f.name] = os.path.join(root, *f.name.split("/"))
    for name in out:
        if any(other.startswith(name + "/") for other in out):
            raise errors.InvalidArgumentError(
                f"the server's answer for {whose} names '{name}' as a file and as a "
                "directory; nothing was written")
    if SAVED_MODEL_PB not in out and SAVED_MODEL_PBTXT not in out:
        raise errors.InvalidArgumentError(
            f"the server's answer for {whose} holds neither {SAVED_MODEL_PB} nor "
            f"{SAVED_MODEL_PBTXT}; nothing was written")
    return out


def list_versions(base):
    """The version directories of a base path (named by a number), ascending."""
    try:
        entries = os.listdir(base)
    except OSError:
        return []
    return sorted(version_of(e) for e in entries
                  if version_of(e) is not None and os.path.isdir(os.path.join(base, e))
                  and not os.path.islink(os.path.join(base, e)))


def version_matches(base, checkpoint):
    root = os.path.join(base, str(checkpoint.step))
    if not os.path.isdir(root):
        return False
    paths = file_paths(root, checkpoint)
    if not all(_local.file_matches(paths[f.name], f) for f in checkpoint.files):
        return False
    count = sum(len(names) for _, _, names in os.walk(root))
    return count == len(checkpoint.files)


def _sync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_version(base, version):
    """Renames base/<version> to a hidden name (it disappears whole), then deletes it."""
    path = os.path.join(base, str(version))
    if not os.path.lexists(path):
        return
    hidden = tempfile.mkdtemp(prefix=f".mgreg-removing-{version}-", dir=base)
    os.rename(path, hidden)
    _sync_dir(base)
    shutil.rmtree(hidden, ignore_errors=True)


def restore_version(client, checkpoint, base, *, keep, remove_newer, progress, download):
    """base/<step>/ complete: staged, each file verified and fsynced, directories fsynced,
    renamed into place in one step; then the versions beyond `keep` removed."""
    paths = file_paths(base, checkpoint)  # every name checked before anything is written
    del paths
    if not version_matches(base, checkpoint):
        staging = tempfile.mkdtemp(prefix=f".mgreg-staging-{checkpoint.step}-", dir=base)
        os.chmod(staging, 0o755)
        try:
            bar = client._progress(progress, checkpoint.total_bytes,
                                   f"restore {checkpoint.model}@{checkpoint.step}")
            try:
                done = 0
                for info in checkpoint.files:
                    path = file_paths(staging, checkpoint)[info.name]
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    download(client, checkpoint, info, path, bar, done)
                    done += info.size
                    bar.update_to(done)
            finally:
                bar.close()
            for parent, _, _ in sorted(os.walk(staging), key=lambda w: -len(w[0])):
                _sync_dir(parent)
            target = os.path.join(base, str(checkpoint.step))
            if os.path.lexists(target):
                remove_version(base, checkpoint.step)
            os.rename(staging, target)
            _sync_dir(base)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    others = []
    for v in list_versions(base):
        if v == checkpoint.step:
            continue
        if v > checkpoint.step and remove_newer:
            remove_version(base, v)
        else:
            others.append(v)
    if keep and len(others) + 1 > keep:
        for v in others[:len(others) + 1 - keep]:
            remove_version(base, v)
    return os.path.join(base, str(checkpoint.step))
