"""Names of scopes and DIDs, and where a DID lives on a deterministic RSE.

Pure functions, no I/O. The path layout is Rucio's ``hash`` algorithm, so a Rucio client
computes the same path for the same DID: ``scope/ab/cd/name`` with ``ab`` and ``cd`` the first two
hex pairs of md5(``scope:name``); in scopes starting with ``user`` or ``group`` dots become
slashes (``user.jdoe`` → ``user/jdoe``).
"""

from __future__ import annotations

import hashlib
import re

from lacus.errors import InvalidName

MAX_SCOPE_LENGTH = 25
MAX_NAME_LENGTH = 250

_SCOPE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*")
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._\-+]*")
_ACCOUNT_RE = re.compile(r"[a-z0-9][a-z0-9_\-.]{0,24}")
_RSE_RE = re.compile(r"[A-Z0-9][A-Z0-9_\-]{0,99}")


def _describe(value: str) -> str:
    shown = value if len(value) <= 60 else value[:57] + "..."
    return repr(shown)


def validate_scope(scope: str) -> str:
    """Return ``scope`` if it is a valid scope, else raise InvalidName saying why."""
    _check_common("scope", scope, MAX_SCOPE_LENGTH)
    if not _SCOPE_RE.fullmatch(scope):
        raise InvalidName(
            f"invalid scope {_describe(scope)}: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return scope


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid DID name, else raise InvalidName saying why."""
    _check_common("name", name, MAX_NAME_LENGTH)
    if not _NAME_RE.fullmatch(name):
        raise InvalidName(
            f"invalid name {_describe(name)}: use letters, digits, '.', '_', '-' and '+', "
            "starting with a letter, digit or '_'"
        )
    return name


def _check_common(kind: str, value: str, max_length: int) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidName(f"invalid {kind}: it must not be empty")
    if "\x00" in value:
        raise InvalidName(f"invalid {kind} {_describe(value)}: it contains a NUL character")
    if value.startswith("/"):
        raise InvalidName(f"invalid {kind} {_describe(value)}: it must not start with '/'")
    if "/" in value:
        raise InvalidName(f"invalid {kind} {_describe(value)}: it must not contain '/'")
    if ".." in value:
        raise InvalidName(f"invalid {kind} {_describe(value)}: it must not contain '..'")
    if len(value) > max_length:
        raise InvalidName(f"invalid {kind}: {len(value)} characters, at most {max_length} allowed")


def validate_account(account: str) -> str:
    """Return ``account`` if it is a valid account name, else raise InvalidName."""
    if not isinstance(account, str) or not _ACCOUNT_RE.fullmatch(account):
        raise InvalidName(
            f"invalid account {_describe(str(account))}: use 1-25 lower-case letters, digits, "
            "'_', '-' and '.'"
        )
    return account


def validate_rse(rse: str) -> str:
    """Return ``rse`` if it is a valid RSE name (upper case, digits, '_' and '-')."""
    if not isinstance(rse, str) or not _RSE_RE.fullmatch(rse):
        raise InvalidName(
            f"invalid RSE name {_describe(str(rse))}: use 1-100 upper-case letters, digits, "
            "'_' and '-'"
        )
    return rse


def parse_did(did: str, *, default_scope: str | None = None) -> tuple[str, str]:
    """Split ``scope:name`` into a validated pair; without a scope use ``default_scope``."""
    if ":" in did:
        scope, name = did.split(":", 1)
    elif default_scope is not None:
        scope, name = default_scope, did
    else:
        raise InvalidName(f"invalid DID {_describe(did)}: expected 'scope:name'")
    return validate_scope(scope), validate_name(name)


def deterministic_path(scope: str, name: str) -> str:
    """Return the RSE-relative path of a DID in Rucio's ``hash`` layout."""
    digest = hashlib.md5(f"{scope}:{name}".encode(), usedforsecurity=False).hexdigest()
    if scope.startswith(("user", "group")):  # Rucio's test: no dot after the prefix
        scope = scope.replace(".", "/")
    return f"{scope}/{digest[0:2]}/{digest[2:4]}/{name}"


def make_pfn(scheme: str, hostname: str, port: int, prefix: str, path: str) -> str:
    """The physical file name of ``path`` (RSE-relative) under one protocol of an RSE."""
    stripped = prefix.strip("/")
    base = "/" + stripped if stripped else ""  # a relative prefix still starts the URL path
    if scheme in ("file", "posix"):
        return f"file://{base}/{path}"
    host = f"{hostname}:{port}" if port else hostname
    return f"{scheme}://{host}{base}/{path}"
