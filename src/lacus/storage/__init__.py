"""Where the bytes live: one protocol, one backend per storage technology, verified copies.

``open_backend("file", prefix="/data/rse1")`` returns a backend; ``write_verified`` and
``read_verified`` are the copies the upload, download and transfer code calls.
"""

from lacus.storage._base import (
    FileStat,
    ReadsRanges,
    RemovesTemporaries,
    ScansStorage,
    StorageBackend,
    ThirdPartyCopy,
    VerifyingBackend,
    known_schemes,
    open_backend,
)
from lacus.storage.posix import PosixBackend
from lacus.storage.verified import (
    ChunkReader,
    check_stored,
    copy_verified,
    read_verified,
    write_verified,
)

__all__ = [
    "ChunkReader",
    "FileStat",
    "PosixBackend",
    "ReadsRanges",
    "RemovesTemporaries",
    "ScansStorage",
    "StorageBackend",
    "ThirdPartyCopy",
    "VerifyingBackend",
    "check_stored",
    "copy_verified",
    "known_schemes",
    "open_backend",
    "read_verified",
    "write_verified",
]
