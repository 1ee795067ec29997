"""The lake as an fsspec file system: ``lacus://scope/name`` (docs/notebook.md).

Paths: ``lacus://`` lists the scopes, ``lacus://SCOPE`` the DIDs of a scope, and a dataset or
container is a directory of what it holds: ``lacus://lofar/obs1/image.fits`` is the file
``lofar:image.fits`` in the dataset ``lofar:obs1`` (``lacus://lofar/image.fits`` is the same
file; ``lacus://lofar:image.fits`` is accepted too). Reads come from the closest available
replica (``_closest``), parts of a file by range reads, whole files checked against the
catalog's adler32 (``_reading``). Writes go to a local temporary file, uploaded to the RSE
``rse`` (verified, then registered) when the file is closed.

Settings (``storage_options``): ``url``, ``account``, ``password``, ``token`` (else
``LACUS_URL``... or ``lacus login``'s file, as ``Client``), ``rse`` (the RSE written to and
read from first; else ``LACUS_RSE``), ``cache_dir`` (verified local copies of files whose
storage cannot serve parts; else ``LACUS_CACHE``, or ``~/.cache/lacus``), ``local_copy`` (read
every file through a verified local copy), ``client`` (a ``lacus.Client`` to use).
"""

from __future__ import annotations

import contextlib
import fnmatch
import itertools
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fsspec.spec import (  # type: ignore[import-untyped]
    AbstractBufferedFile,
    AbstractFileSystem,
)

from lacus.client._client import Client
from lacus.client._reading import Located, RangeSource, ReplicaReader, SequentialCheck
from lacus.client.config import ClientConfig, load_config
from lacus.errors import (
    AccessDenied,
    AlreadyExists,
    ChecksumMismatch,
    InvalidInput,
    LacusError,
    NotFound,
    ReplicaNotFound,
    UnsupportedOperation,
)
from lacus.naming import validate_name, validate_scope

__all__ = ["LacusFileSystem"]

_MAGIC = re.compile(r"[*?\[]")


def default_cache_dir() -> Path:
    explicit = os.environ.get("LACUS_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lacus"


@contextlib.contextmanager
def _os_errors(path: str) -> Iterator[None]:
    """Lacus's errors as the ``OSError`` subclasses file-system users expect."""
    try:
        yield
    except NotFound as exc:
        raise FileNotFoundError(2, exc.message, path) from exc
    except AccessDenied as exc:
        raise PermissionError(13, exc.message, path) from exc
    except AlreadyExists as exc:
        raise FileExistsError(17, exc.message, path) from exc


class LacusFileSystem(AbstractFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """``lacus://`` (see the module)."""

    protocol = "lacus"
    root_marker = ""

    def __init__(
        self,
        url: str | None = None,
        *,
        account: str | None = None,
        password: str | None = None,
        token: str | None = None,
        rse: str | None = None,
        cache_dir: str | Path | None = None,
        local_copy: bool = False,
        client: Client | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._login = (url, account, password, token)
        self._rse = rse
        self._given_client = client
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.local_copy = local_copy
        self._current: tuple[tuple[ClientConfig, str | None], Client, ReplicaReader] | None = None

    def _connection(self) -> tuple[Client, ReplicaReader]:
        """The client and reader for the settings in force now: fsspec keeps one instance per
        set of arguments, and the environment (``LACUS_URL``...) may have changed since."""
        config = self._given_client.config if self._given_client else load_config(*self._login)
        key = (config, self._rse or os.environ.get("LACUS_RSE") or None)
        current = self._current
        if current is None or current[0] != key:
            client = self._given_client or Client(
                config.url, account=config.account, password=config.password, token=config.token
            )
            if current is not None:
                current[2].close()
                if current[1] is not self._given_client:
                    current[1].close()
            current = (key, client, ReplicaReader(client, rse=key[1], cache_dir=self.cache_dir))
            self._current = current
        return current[1], current[2]

    def disconnect(self) -> None:
        """Close the connections this file system opened: to the storages, and to the server
        (not a ``client`` it was given). It connects again when used."""
        current, self._current = self._current, None
        if current is not None:
            current[2].close()
            if current[1] is not self._given_client:
                current[1].close()

    @property
    def client(self) -> Client:
        return self._connection()[0]

    @property
    def reader(self) -> ReplicaReader:
        return self._connection()[1]

    @property
    def rse(self) -> str | None:
        """The RSE written to and read from first (``rse=``, else ``LACUS_RSE``)."""
        return self._rse or os.environ.get("LACUS_RSE") or None

    # -- paths ---------------------------------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = str(path)
        text = text.removeprefix("lacus://").removeprefix("lacus::")
        text = text.strip("/")
        head, sep, tail = text.partition("/")
        if ":" in head:  # lacus://scope:name
            head = head.replace(":", "/", 1)
        return head + sep + tail

    @staticmethod
    def _parts(path: str) -> list[str]:
        return [part for part in path.split("/") if part]

    def _path(self, path: str) -> list[str]:
        parts = self._parts(self._strip_protocol(path))
        if parts:
            validate_scope(parts[0])
            for part in parts[1:]:
                validate_name(part)
        return parts

    # -- listing -------------------------------------------------------------------------------
    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        parts = self._path(path)
        with _os_errors(path):
            if not parts:
                entries = [_scope_entry(scope) for scope in self.client.list_scopes()]
            elif len(parts) == 1:
                self._check_scope(parts[0])
                found = self.client.list_dids(f"{parts[0]}:*")
                entries = [_did_entry(parts[0], did) for did in found]
            else:
                info = self.info(path)
                if info["type"] == "file":
                    entries = [info]
                else:
                    did = f"{parts[0]}:{parts[-1]}"
                    prefix = "/".join(parts)
                    entries = [_did_entry(prefix, child) for child in self.client.list_content(did)]
        entries.sort(key=lambda entry: entry["name"])
        return entries if detail else [entry["name"] for entry in entries]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        parts = self._path(path)
        with _os_errors(path):
            if not parts:
                return {"name": "", "type": "directory", "size": 0}
            if len(parts) == 1:
                return _scope_entry(self._check_scope(parts[0]))
            did = self.client.get_did(f"{parts[0]}:{parts[-1]}")
            self._check_ancestry(parts)
        return _did_entry("/".join(parts[:-1]), did)

    def _check_scope(self, scope: str) -> dict[str, Any]:
        for known in self.client.list_scopes():
            if known["scope"] == scope:
                return known
        raise FileNotFoundError(2, f"no scope {scope}", scope)

    def _check_ancestry(self, parts: list[str]) -> None:
        """``scope/a/b/c``: b holds c, a holds b."""
        scope = parts[0]
        for parent, child in itertools.pairwise(parts[1:]):
            parents = self.client.list_parents(f"{scope}:{child}")
            if not any((p["scope"], p["name"]) == (scope, parent) for p in parents):
                raise FileNotFoundError(
                    2, f"{scope}:{parent} does not hold {scope}:{child}", "/".join(parts)
                )

    def glob(self, path: str, maxdepth: int | None = None, **kwargs: Any) -> Any:
        """Wildcards per path part; a pattern for the DIDs of a scope is a search on the
        server (``lacus://lofar/obs_*``), below a dataset or container its content is matched
        here. ``**`` goes through fsspec's own (recursive) glob."""
        detail = kwargs.pop("detail", False)
        stripped = self._strip_protocol(path)
        if "**" in stripped or maxdepth is not None:
            return super().glob(path, maxdepth=maxdepth, detail=detail, **kwargs)
        parts = self._parts(stripped)
        if not _MAGIC.search(stripped):
            found = []
            with contextlib.suppress(FileNotFoundError):
                found.append(self.info(stripped))
        else:
            found = self._glob(parts)
        found.sort(key=lambda entry: entry["name"])
        if detail:
            return {entry["name"]: entry for entry in found}
        return [entry["name"] for entry in found]

    def _glob(self, parts: list[str]) -> list[dict[str, Any]]:
        level = [
            _scope_entry(scope)
            for scope in self.client.list_scopes()
            if fnmatch.fnmatchcase(scope["scope"], parts[0])
        ]
        for depth, pattern in enumerate(parts[1:], start=1):
            below: list[dict[str, Any]] = []
            for entry in level:
                if entry["type"] != "directory":
                    continue
                if not _MAGIC.search(pattern):
                    with contextlib.suppress(FileNotFoundError):
                        below.append(self.info(f"{entry['name']}/{pattern}"))
                elif depth == 1:
                    scope = entry["name"]
                    found = self.client.list_dids(f"{scope}:{_server_pattern(pattern)}")
                    below += [_did_entry(scope, did) for did in found]
                else:
                    below += self.ls(entry["name"], detail=True)
            level = [e for e in below if fnmatch.fnmatchcase(_basename(e["name"]), pattern)]
        return level

    # -- reading -------------------------------------------------------------------------------
    def locate(self, path: str) -> Located:
        """The file at ``path`` with its replicas, best first (FileNotFoundError, or
        IsADirectoryError for a dataset or container)."""
        info = self.info(path)
        if info["type"] != "file":
            raise IsADirectoryError(21, "a dataset or container, not a file", path)
        with _os_errors(path):
            return self.reader.locate(info["did"])

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        if start is None and end is None:  # the whole file: verified before it is returned
            file = self.locate(path)
            with _os_errors(path):
                return self.reader.read_whole(file)
        with self.open(path, "rb") as stream:
            size = stream.size
            first = 0 if start is None else start if start >= 0 else max(0, size + start)
            last = size if end is None else end if end >= 0 else max(0, size + end)
            stream.seek(first)
            data: bytes = stream.read(max(0, last - first))
            return data

    def get_file(self, rpath: str, lpath: str, callback: Any = None, **kwargs: Any) -> None:
        """Copy a file to ``lpath``, which appears only once its bytes match the catalog."""
        if self.isdir(rpath):
            os.makedirs(lpath, exist_ok=True)
            return
        file = self.locate(rpath)
        with _os_errors(rpath):
            self.reader.copy_to(file, Path(lpath))
        if callback is not None:
            callback.relative_update(file.bytes)

    def checksum(self, path: str) -> int:
        return int(self.info(path)["adler32"] or "0", 16)

    def ukey(self, path: str) -> str:
        info = self.info(path)
        return f"{info['did']}:{info.get('adler32')}"

    def created(self, path: str) -> Any:
        return self.info(path).get("created_at")

    def modified(self, path: str) -> Any:
        return self.info(path).get("updated_at")

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> AbstractBufferedFile:
        if mode == "rb":
            file = self.locate(path)
            return LacusReadFile(
                self, path, file, block_size=block_size, cache_options=cache_options, **kwargs
            )
        if mode in ("wb", "xb"):
            return LacusWriteFile(self, path, mode, block_size=block_size)
        raise ValueError(f"lacus:// files open as 'rb', 'wb' or 'xb', not {mode!r}")

    # -- writing -------------------------------------------------------------------------------
    def put_file(self, lpath: str, rpath: str, callback: Any = None, **kwargs: Any) -> None:
        """Upload ``lpath`` as the file ``rpath`` (verified on the storage, then registered;
        into the dataset ``rpath`` names, created if needed)."""
        if os.path.isdir(lpath):
            return  # collections come with their files
        scope, dataset, name = self._target(rpath)
        local = Path(lpath)
        size = local.stat().st_size
        with contextlib.ExitStack() as stack:
            if local.name != name:  # the upload names the file after the local one
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lacus-")))
                (folder / name).symlink_to(local.resolve())
                local = folder / name
            with _os_errors(rpath):
                self.client.upload([local], rse=self._write_rse(), scope=scope, dataset=dataset)
        if callback is not None:
            callback.relative_update(size)

    def _target(self, path: str) -> tuple[str, str | None, str]:
        """Scope, dataset (None: none) and name of a file to write at ``path``."""
        parts = self._path(path)
        if len(parts) < 2:
            raise InvalidInput(f"a file is written at lacus://SCOPE[/DATASET]/NAME, not {path!r}")
        if len(parts) > 3:
            parent = "/".join(parts[:-1])
            if self.info(parent)["did_type"] != "dataset":
                raise InvalidInput(f"{parent} is not a dataset: files go into datasets")
        if self.exists("/".join(parts[:1] + parts[-1:])):
            raise FileExistsError(
                17, "the lake keeps files as they are: a DID is written once", path
            )
        return parts[0], parts[-2] if len(parts) > 2 else None, parts[-1]

    def _write_rse(self) -> str:
        if not self.rse:
            raise InvalidInput(
                "lacus:// needs an RSE to write to (or make data available on): "
                "fsspec.open(..., rse='NAME'), LacusFileSystem(rse='NAME') or LACUS_RSE"
            )
        return self.rse

    def make_available(self, path: str, **options: Any) -> str | dict[str, str]:
        """``Client.make_available`` for the DID at ``path`` (on ``rse`` by default)."""
        info = self.info(path)
        options.setdefault("rse", self._write_rse())
        return self.client.make_available(info["did"], **options)


class LacusReadFile(AbstractBufferedFile):  # type: ignore[misc]
    """A file of the lake opened for reading: parts from the closest replica that serves
    them, every read that reaches the end checked (``SequentialCheck``); a replica that fails
    is left for the next one."""

    def __init__(
        self,
        fs: LacusFileSystem,
        path: str,
        file: Located,
        *,
        block_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.file = file
        self._sources = fs.reader.range_sources(file, local_copy=fs.local_copy)
        self._source: RangeSource | None = None
        self._errors: list[str] = []
        self._check = SequentialCheck(file.bytes, file.adler32, f"lacus://{file.scope}/{file.name}")
        super().__init__(fs, path, "rb", block_size=block_size, size=file.bytes, **kwargs)

    def _next_source(self) -> RangeSource:
        try:
            self._source = next(self._sources)
        except StopIteration:
            detail = "; ".join(self._errors) or "no replica can be read"
            raise ReplicaNotFound(f"cannot read {self.file.did}: {detail}") from None
        except LacusError as exc:  # the local copy could not be made
            self._errors.append(exc.message)
            detail = "; ".join(self._errors)
            raise ReplicaNotFound(f"cannot read {self.file.did}: {detail}") from exc
        return self._source

    def _fetch_range(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if start >= end:
            return b""
        while True:
            source = self._source or self._next_source()
            try:
                data = source.read(start, end - start)
                if len(data) != end - start:
                    raise ChecksumMismatch(
                        f"{self.file.did} on {source.rse or 'the local cache'}: "
                        f"{start + len(data)} bytes, the catalog says {self.size}"
                    )
                if start == 0 and end == self.size:  # all of it, nothing returned yet
                    self._check = SequentialCheck(self.size, self.file.adler32, self._check.where)
                self._check.feed(start, data)
            except UnsupportedOperation as exc:
                self._errors.append(exc.message)
                self._source = None
                continue
            except ChecksumMismatch as exc:
                if source.rse is not None:  # a replica's bytes are wrong, not the local copy's
                    where = self._check.where if exc.message.startswith("lacus://") else ""
                    self.fs.reader.suspect(self.file, source.rse, exc, where=where)
                if start != 0 or end != self.size:  # earlier parts were returned already
                    raise
                self._errors.append(exc.message)
                self._source = None
                continue
            except LacusError as exc:
                self._errors.append(exc.message)
                self._source = None
                continue
            return data


class LacusWriteFile(AbstractBufferedFile):  # type: ignore[misc]
    """A file being written: its bytes go to a local temporary file, uploaded (verified,
    registered) by ``close``. Leaving its ``with`` block through an exception, or never
    closing it, discards it: nothing reaches the lake."""

    def __init__(
        self, fs: LacusFileSystem, path: str, mode: str, *, block_size: int | None = None
    ) -> None:
        self.scope, self.dataset, self.name = fs._target(path)
        self.rse = fs._write_rse()
        self._folder = Path(tempfile.mkdtemp(prefix="lacus-write-"))
        self._local = self._folder / self.name
        self._stream = self._local.open("wb")
        super().__init__(fs, path, mode, block_size=block_size)

    def _upload_chunk(self, final: bool = False) -> bool:
        self._stream.write(self.buffer.getbuffer())
        if final:
            self._stream.close()
            try:
                with _os_errors(self.path):
                    self.fs.client.upload(
                        [self._local], rse=self.rse, scope=self.scope, dataset=self.dataset
                    )
            finally:
                self.discard()
        return True

    def discard(self) -> None:
        self._stream.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.discard()
            self.closed = True
            return
        self.close()

    def __del__(self) -> None:
        if not self.closed:
            self.discard()
            self.closed = True


def _scope_entry(scope: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": scope["scope"],
        "type": "directory",
        "size": 0,
        "did_type": "scope",
        "account": scope.get("account"),
    }


def _did_entry(prefix: str, did: dict[str, Any]) -> dict[str, Any]:
    is_file = did["type"] == "file"
    return {
        "name": f"{prefix}/{did['name']}",
        "type": "file" if is_file else "directory",
        "size": (did.get("bytes") or 0) if is_file else 0,
        "did": f"{did['scope']}:{did['name']}",
        "did_type": did["type"],
        "bytes": did.get("bytes"),
        "length": did.get("length"),
        "adler32": did.get("adler32"),
        "md5": did.get("md5"),
        "account": did.get("account"),
        "created_at": did.get("created_at"),
        "updated_at": did.get("updated_at"),
    }


def _basename(path: str) -> str:
    return path.rpartition("/")[2]


def _server_pattern(pattern: str) -> str:
    """The server's search knows ``*`` only: ``?`` and ``[...]`` widen to ``*``, and the
    names found are matched against ``pattern`` here."""
    wide = re.sub(r"\?|\[[^\]]*\]", "*", pattern)
    return re.sub(r"\*+", "*", wide)
