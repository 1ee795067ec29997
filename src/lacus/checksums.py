"""Checksums of byte streams: adler32 always, md5 when asked, both in one pass over the bytes.

Rucio's formats: adler32 as 8 lower-case hex digits, md5 as 32. zlib-ng's ``adler32`` and
``hashlib`` release the GIL on large buffers, so a large file can be hashed in a thread beside
the copy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from zlib_ng.zlib_ng import adler32  # SIMD adler32: ~5x zlib's speed, identical results

__all__ = [
    "CHUNK_SIZE",
    "ChecksumAccumulator",
    "Checksums",
    "adler32",
    "adler32_combine",
    "checksum_chunks",
    "checksum_file",
    "checksum_stream",
    "format_adler32",
]

CHUNK_SIZE = 4 * 1024 * 1024
_ADLER_MOD = 65521


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """The adler32 of two byte strings one after the other, from the adler32 of each and the
    length of the second (e.g. parts of a file read back separately).

    adler32 is ``B << 16 | A`` with A = 1 + the sum of the bytes and B = the sum of the A after
    each byte (mod 65521); appending ``n`` bytes whose own sums are A2, B2 gives
    A = A1 + A2 - 1 and B = B1 + B2 + n * (A1 - 1).
    """
    a1, b1 = first & 0xFFFF, first >> 16
    a2, b2 = second & 0xFFFF, second >> 16
    a = (a1 + a2 - 1) % _ADLER_MOD
    b = (b1 + b2 + second_length * (a1 - 1)) % _ADLER_MOD
    return b << 16 | a


@dataclass(frozen=True, slots=True)
class Checksums:
    """Size and checksums of one file's bytes."""

    bytes: int
    adler32: str
    md5: str | None = None


def format_adler32(value: int) -> str:
    return f"{value & 0xFFFFFFFF:08x}"


class ChecksumAccumulator:
    """Accumulates size, adler32 and (optionally) md5 over successive chunks."""

    __slots__ = ("_adler", "_md5", "size")

    def __init__(self, *, md5: bool = True) -> None:
        self._adler = 1
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self.size = 0

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        self._adler = adler32(chunk, self._adler)
        if self._md5 is not None:
            self._md5.update(chunk)
        self.size += len(chunk)

    def result(self) -> Checksums:
        md5 = self._md5.hexdigest() if self._md5 is not None else None
        return Checksums(bytes=self.size, adler32=format_adler32(self._adler), md5=md5)


def checksum_chunks(chunks: Iterable[bytes], *, md5: bool = True) -> Checksums:
    acc = ChecksumAccumulator(md5=md5)
    for chunk in chunks:
        acc.update(chunk)
    return acc.result()


def checksum_stream(
    stream: BinaryIO, *, md5: bool = True, chunk_size: int = CHUNK_SIZE
) -> Checksums:
    acc = ChecksumAccumulator(md5=md5)
    while chunk := stream.read(chunk_size):
        acc.update(chunk)
    return acc.result()


def checksum_file(path: str | Path, *, md5: bool = True) -> Checksums:
    with open(path, "rb", buffering=0) as stream:
        return checksum_stream(stream, md5=md5)
