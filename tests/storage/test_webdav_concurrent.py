"""Puts racing each other on a real Apache httpd: several workers making the same collections."""

from __future__ import annotations

import io
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.servers.apache import ApacheServer


def put(backend: Any, index: int) -> None:
    backend.put(f"scope/ab/cd/file_{index}", io.BytesIO(b"%d" % index))


def test_concurrent_puts_into_the_same_new_collections(apache_server: ApacheServer) -> None:
    """Apache answers 403 ("File exists") to a MKCOL that loses a race with another: the put
    goes on, the collection being there."""
    for _ in range(15):
        prefix = f"race-{secrets.token_hex(4)}"
        backends = [apache_server.backend(prefix) for _ in range(3)]
        try:
            with ThreadPoolExecutor(3) as pool:
                list(pool.map(put, backends, range(3)))
            assert sorted(backends[0].list()) == [f"scope/ab/cd/file_{i}" for i in range(3)]
        finally:
            for backend in backends:
                backend.close()
