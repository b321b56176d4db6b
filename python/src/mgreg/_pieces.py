"""A local file read once, front to back, in the 1 MiB pieces of its chunked SHA-256
(_digest.py), each piece read and hashed on a thread pool ahead of the caller: what a
one-pass push sends from (as client/pipelined_upload.h does in C++).

hashlib and os.pread release the GIL, so the pool's threads read and hash on every core
while the caller (gRPC's request thread) sends the pieces before them. Memory: at most
`ahead` pieces wait, read and hashed, plus the one the caller holds."""

import collections
import concurrent.futures
import hashlib
import os

from . import _digest, errors

PIECE_BYTES = _digest.PIECE_BYTES


def hash_threads():
    """Threads that read and hash pieces: one per core, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


class Piece:
    """Bytes [offset, offset + len(data)) of the file and their raw SHA-256."""
    __slots__ = ("offset", "data", "sha256")

    def __init__(self, offset, data, sha256):
        self.offset, self.data, self.sha256 = offset, data, sha256

    @property
    def end(self):
        return self.offset + len(self.data)


def _read_and_hash(fd, path, offset, n):
    data = os.pread(fd, n, offset)
    while len(data) < n:  # a short read is the end of the file, or a signal
        more = os.pread(fd, n - len(data), offset + len(data))
        if not more:
            raise errors.FailedPreconditionError(
                f"local file '{path}' ended at {offset + len(data)} bytes while it was "
                "being sent; it shrank, the checkpoint changed under the upload")
        data += more
    return Piece(offset, data, hashlib.sha256(data).digest())


class PieceReader:
    """Reads the first `size` bytes of `path` as Pieces, in order (pieces()); every piece
    of the file, from offset 0, so that the file's chunked SHA-256 covers it all.

    Errors: OSError opening or reading the file; FailedPreconditionError when the file
    is shorter than `size`. Use it as a context manager: leaving stops the reads ahead
    (those running finish) and closes the file. One thread iterates it."""

    def __init__(self, path, size, *, ahead=32, threads=None):
        self._path = os.fspath(path)
        self._size = size
        self._ahead = max(1, ahead)
        self._fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads or hash_threads(), thread_name_prefix="mgreg-hash")
        self._queued = collections.deque()
        self._next = 0  # offset of the next piece to queue

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self):
        while len(self._queued) < self._ahead and self._next < self._size:
            n = min(PIECE_BYTES, self._size - self._next)
            self._queued.append(self._pool.submit(_read_and_hash, self._fd, self._path,
                                                  self._next, n))
            self._next += n

    def pieces(self):
        """Yields every Piece in file order; the last one may be shorter."""
        self._fill()
        while self._queued:
            piece = self._queued.popleft().result()
            self._fill()
            yield piece

    def close(self):
        if self._fd < 0:
            return
        for future in self._queued:
            future.cancel()
        self._pool.shutdown(wait=True)  # a running read still uses the descriptor
        self._queued.clear()
        os.close(self._fd)
        self._fd = -1
