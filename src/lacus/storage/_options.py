"""What the network backends (``s3``, ``root``, ``davs``) share: checking the options of an RSE
protocol (its ``extended_attributes``) and its hostname, and the words of their errors.

Each backend decides what a failure of its protocol is (a status code, an error number, a
message); ``failure`` says it the same way for all of them: "storage refused writing URL:
reason", "URL does not exist"...
"""

from __future__ import annotations

import stat
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from lacus.errors import (
    FileAlreadyOnStorage,
    InvalidInput,
    LacusError,
    StorageError,
    StorageFileNotFound,
    StorageFull,
    StoragePermissionDenied,
)

__all__ = [
    "Kind",
    "check_names",
    "failure",
    "file_mode",
    "positive_seconds",
    "typed",
    "url_host",
    "verify",
]

Kind = Literal["denied", "missing", "full", "exists", "failed"]


# -- options ------------------------------------------------------------------------------------


def check_names(backend: str, options: Mapping[str, object], allowed: Sequence[str]) -> None:
    """Refuse an option ``backend`` does not know (a typo must not pass for a default)."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InvalidInput(
            f"the {backend} backend takes the options {', '.join(allowed)}, "
            f"not {', '.join(unknown)}"
        )


def typed(backend: str, options: Mapping[str, object], name: str, kind: type, default: Any) -> Any:
    """``options[name]`` if it is a ``kind`` (a bool is not an int here), ``default`` if absent."""
    value = options.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise InvalidInput(f"the {backend} option {name} must be a {kind.__name__}, not {value!r}")
    return value


def positive_seconds(backend: str, name: str, value: object) -> float:
    """``value`` as a number of seconds, which must be a positive int or float."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidInput(
            f"the {backend} option {name} must be a positive number of seconds, not {value!r}"
        )
    return float(value)


def file_mode(backend: str, name: str, value: object, *, owner: int) -> int:
    """``value`` as permission bits: an int (``0o640``, or 416 from JSON) or a string of octal
    digits (``"0640"``, ``"640"``, ``"0o640"``), within 0o777 and giving the owner at least the
    bits ``owner`` (what the storage itself needs: rw- for files, rwx for directories)."""
    mode: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str):
        digits = value.strip().lower().removeprefix("0o")
        if digits and len(digits) <= 4 and all(char in "01234567" for char in digits):
            mode = int(digits, 8)
    if mode is None or not 0 <= mode <= 0o777 or mode & owner != owner:
        example = owner | (owner >> 3) & 0o050  # 0640 for files, 0750 for directories
        raise InvalidInput(
            f"the {backend} option {name} must be octal permission bits (at most 0777) that "
            f'leave the owner {stat.filemode(owner)[1:4]}, such as "{example:04o}", not {value!r}'
        )
    return mode


def verify(backend: str, options: Mapping[str, object]) -> bool | str:
    """Option ``verify``: check the server's certificate (true, the default), not (false), or
    against the CA bundle at this path."""
    value = options.get("verify", True)
    if not isinstance(value, bool | str):
        raise InvalidInput(
            f"the {backend} option verify must be true, false or the path of a CA bundle"
        )
    return value


def url_host(backend: str, hostname: object) -> str:
    """``hostname`` as it stands in a URL (an IPv6 address in brackets); there must be one."""
    if not hostname or not isinstance(hostname, str):
        raise InvalidInput(f"a {backend} protocol needs a hostname (the server's)")
    return f"[{hostname}]" if ":" in hostname and not hostname.startswith("[") else hostname


# -- errors -------------------------------------------------------------------------------------


def failure(kind: Kind, url: str, path: str, doing: str, reason: str) -> LacusError:
    """The error for a request about ``path`` below the storage ``url`` that failed ``doing``
    (reading, writing...) because of ``reason`` (the server's words), of this ``kind``."""
    where = f"{url}/{path}" if path else url
    if kind == "denied":
        return StoragePermissionDenied(f"storage refused {doing} {where}: {reason}")
    if kind == "missing":
        return StorageFileNotFound(f"{where} does not exist")
    if kind == "full":
        return StorageFull(f"storage {url} is full: cannot write {path} ({reason})")
    if kind == "exists":
        return FileAlreadyOnStorage(f"{where} exists already")
    return StorageError(f"storage failed {doing} {where}: {reason}")
