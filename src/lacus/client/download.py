"""Downloads: files, datasets, containers or wildcards, each file verified (size and adler32).

Files land in ``DIR/scope/name``; with ``structure=True`` the DID's structure is kept as
directories (``DIR/scope/container/dataset/name``). A file already present with the right
checksum is skipped. A corrupted or unreachable replica is never kept: the next replica is tried,
and a corrupted one is reported suspicious to the server (best effort, ``integrity.Suspects``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from lacus.checksums import Checksums, checksum_file
from lacus.client._storage import backend_for
from lacus.client.integrity import Suspects
from lacus.errors import ChecksumMismatch, DIDNotFound, InvalidInput, LacusError, ReplicaNotFound
from lacus.naming import parse_did
from lacus.storage import StorageBackend, read_verified

if TYPE_CHECKING:
    from lacus.client._client import Client

DIDKey = tuple[str, str]


@dataclass(slots=True)
class Target:
    """One file to bring to one local path."""

    scope: str
    name: str
    dest: Path
    replica: dict[str, Any]


class Downloader:
    def __init__(
        self,
        client: Client,
        *,
        rse: str | None = None,
        workers: int = 4,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.client = client
        self.rse = rse
        self.workers = max(1, workers)
        self.progress = progress
        self._backends: dict[str, StorageBackend | LacusError] = {}
        self.suspects = Suspects(client, reader="lacus download")

    def download(
        self, dids: list[str], directory: Path, *, structure: bool
    ) -> list[dict[str, Any]]:
        targets = self._targets(dids, directory, structure=structure)
        if self.workers == 1 or len(targets) <= 1:
            results = [self._fetch(target) for target in targets]
        else:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                results = list(pool.map(self._fetch, targets))
        reads = [
            (*parse_did(result["did"]), result["rse"])
            for result in results
            if result["status"] == "downloaded"
        ]
        with suppress(LacusError):  # a lost access time never fails a download
            self.client.report_reads(reads)
        failed = [result for result in results if result["status"] == "failed"]
        if failed:
            first = failed[0]
            error_class: type[LacusError] = first.pop("error_class")
            raise error_class(
                f"{len(failed)} of {len(results)} files failed; first: {first['did']}: "
                f"{first['error']}"
            )
        for result in results:
            result.pop("error_class", None)
        return results

    # -- what to fetch ---------------------------------------------------------------------------
    def _expand(self, did: str) -> list[dict[str, Any]]:
        name = did.partition(":")[2]
        if "*" in name:
            found = list(self.client.list_dids(did))
            if not found:
                raise DIDNotFound(f"no DID matches {did}")
            return found
        parse_did(did)
        return [self.client.get_did(did)]

    def _targets(self, dids: list[str], directory: Path, *, structure: bool) -> list[Target]:
        targets: dict[Path, Target] = {}
        for pattern in dids:
            for did in self._expand(pattern):
                key = (did["scope"], did["name"])
                dirs = self._layout(key, did["type"], structure)
                for replica in self.client.list_replicas([f"{key[0]}:{key[1]}"], rse=self.rse):
                    file_key = (replica["scope"], replica["name"])
                    for sub in dirs.get(file_key, [PurePosixPath(file_key[0])]):
                        dest = directory.joinpath(*sub.parts, file_key[1])
                        known = targets.get(dest)
                        if known is not None and (known.scope, known.name) != file_key:
                            raise InvalidInput(
                                f"{known.scope}:{known.name} and {file_key[0]}:{file_key[1]} "
                                f"would both be written to {dest}"
                            )
                        targets[dest] = Target(file_key[0], file_key[1], dest, replica)
        return list(targets.values())

    def _layout(
        self, key: DIDKey, did_type: str, structure: bool
    ) -> dict[DIDKey, list[PurePosixPath]]:
        """Local directories of each file below ``key`` (empty: the default ``scope/``)."""
        if not structure or did_type == "file":
            return {}
        layout: dict[DIDKey, list[PurePosixPath]] = {}
        stack = [(key, PurePosixPath(key[0], key[1]))]
        seen: set[DIDKey] = set()
        while stack:
            (scope, name), where = stack.pop()
            if (scope, name) in seen:
                continue
            seen.add((scope, name))
            for child in self.client.list_content(f"{scope}:{name}"):
                child_key = (child["scope"], child["name"])
                if child["type"] == "file":
                    layout.setdefault(child_key, []).append(where)
                else:
                    stack.append((child_key, where / child["name"]))
        return layout

    # -- fetching --------------------------------------------------------------------------------
    def _backend(self, rse_name: str) -> StorageBackend:
        cached = self._backends.get(rse_name)
        if cached is None:
            try:
                cached = backend_for(self.client.get_rse(rse_name))
            except LacusError as exc:
                cached = exc
            self._backends[rse_name] = cached
        if isinstance(cached, LacusError):
            raise cached
        return cached

    def _fetch(self, target: Target) -> dict[str, Any]:
        replica = target.replica
        did = f"{target.scope}:{target.name}"
        expected = Checksums(bytes=replica["bytes"], adler32=replica["adler32"], md5=None)
        result: dict[str, Any] = {"did": did, "path": str(target.dest), "bytes": replica["bytes"]}
        if _already_present(target.dest, expected):
            if self.progress:
                self.progress(expected.bytes)
            return {**result, "status": "present", "rse": None}
        errors: list[LacusError] = []
        for rse_name, location in _ordered(replica["rses"], self.rse):
            try:
                backend = self._backend(rse_name)
                read_verified(backend, location["path"], target.dest, expected=expected)
            except ChecksumMismatch as exc:  # the copy is corrupt: the server should know
                errors.append(exc)
                where = f"{backend.url}/{location['path']}"
                self.suspects.report(target.scope, target.name, rse_name, exc.message, where=where)
                continue
            except LacusError as exc:
                errors.append(exc)
                continue
            if self.progress:
                self.progress(expected.bytes)
            return {**result, "status": "downloaded", "rse": rse_name}
        if not errors:
            errors.append(ReplicaNotFound(f"{did} has no available replica"))
        return {
            **result,
            "status": "failed",
            "rse": None,
            "error": "; ".join(error.message for error in errors),
            "error_class": type(errors[-1]),
        }


def _already_present(dest: Path, expected: Checksums) -> bool:
    if not dest.is_file() or dest.stat().st_size != expected.bytes:
        return False
    return checksum_file(dest, md5=False).adler32 == expected.adler32


def _ordered(rses: dict[str, Any], preferred: str | None) -> list[tuple[str, Any]]:
    items = sorted(rses.items())
    if preferred is not None:
        items.sort(key=lambda item: item[0] != preferred)
    return items
