"""The chunked SHA-256 (mgreg._digest) against the fixed vectors tests/common/
file_digest_test.cc checks in C++: byte i of an n-byte file is (i * 7 + 3) % 251."""

import hashlib

import pytest

from mgreg import _digest

MIB = 1 << 20
VECTORS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "c942a06c127c2c18022677e888020afb174208d299354f3ecfedb124a1f3fa45",
    MIB: "e2369d7f9279da65a652b86e208291f28f70f890ad4b66403363a45f27ed3330",
    MIB + 1: "e7408dee4d5a8cbdd0e8d58bee8ed7030fd0ef32716ace3a88556b816fcde32e",
    7 * MIB // 2: "b055e796d87c1fa16ff45206b2588591e2c8e78a5e92b49b0c734a952566fc46",
}


def pattern(n):
    return bytes((i * 7 + 3) % 251 for i in range(n))


@pytest.mark.parametrize("size", sorted(VECTORS))
def test_matches_the_fixed_vectors(size):
    assert _digest.chunked_sha256(pattern(size)) == VECTORS[size]


@pytest.mark.parametrize("step", [1000, 333333, MIB, 3 * MIB])
def test_any_split_gives_the_same_digest(step):
    data = pattern(7 * MIB // 2)
    h = _digest.ChunkedSha256()
    for pos in range(0, len(data), step):
        h.update(data[pos:pos + step])
    assert h.hexdigest() == VECTORS[7 * MIB // 2]


def test_a_one_piece_file_is_the_digest_of_its_digest():
    data = pattern(1000)
    assert _digest.chunked_sha256(data) == hashlib.sha256(hashlib.sha256(data).digest()).hexdigest()
