"""adler32 of a file from the adler32 of its parts (a WebDAV put read back part by part)."""

from __future__ import annotations

import random
import zlib

import pytest

from lacus.checksums import adler32_combine


@pytest.mark.parametrize("seed", range(20))
def test_combined_parts_give_the_whole_files_adler32(seed: int) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(rng.randrange(0, 300_000))
    cuts = sorted(rng.randrange(0, len(data) + 1) for _ in range(rng.randrange(0, 5)))
    value, start = 1, 0
    for end in [*cuts, len(data)]:
        part = data[start:end]
        value = adler32_combine(value, zlib.adler32(part), len(part))
        start = end
    assert value == zlib.adler32(data)


def test_sums_that_wrap_the_modulus() -> None:
    first, second = b"\xff" * 5_000_000, b"\xfe" * 7_000_001
    combined = adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second))
    assert combined == zlib.adler32(first + second)
    assert adler32_combine(zlib.adler32(first), 1, 0) == zlib.adler32(first)
