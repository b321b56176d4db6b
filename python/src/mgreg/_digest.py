"""The chunked SHA-256 of a file, as common/file_digest.h defines it (README: "Checking a
restored file by hand"): the SHA-256 of the concatenated raw 32-byte SHA-256 digests of
the file's consecutive 1 MiB pieces, the last piece shorter; an empty file has no pieces,
so its digest is the SHA-256 of no bytes. Lower-case hex."""

import hashlib

PIECE_BYTES = 1 << 20


class ChunkedSha256:
    """hashlib-like: update(bytes) in any split, hexdigest() of everything so far."""

    def __init__(self):
        self._outer = hashlib.sha256()
        self._piece = hashlib.sha256()
        self._fill = 0

    def update(self, data):
        view = memoryview(data)
        while len(view):
            n = min(PIECE_BYTES - self._fill, len(view))
            self._piece.update(view[:n])
            self._fill += n
            view = view[n:]
            if self._fill == PIECE_BYTES:
                self._outer.update(self._piece.digest())
                self._piece = hashlib.sha256()
                self._fill = 0

    def hexdigest(self):
        outer = self._outer.copy()
        if self._fill:
            outer.update(self._piece.digest())
        return outer.hexdigest()


def chunked_sha256(data):
    """The chunked SHA-256 (hex) of `data`."""
    h = ChunkedSha256()
    h.update(data)
    return h.hexdigest()


def verifier(info):
    """(hasher, expected hex, what) for a FileInfo: its chunked SHA-256 when the server
    gives one, else its whole-file SHA-256 (a file stored before chunked digests)."""
    if info.chunked_sha256:
        return ChunkedSha256(), info.chunked_sha256, "chunked SHA-256"
    return hashlib.sha256(), info.sha256, "SHA-256"
