"""The Lacus error tree.

Every error knows the HTTP status the server answers with and the Rucio exception class name sent in
the ``ExceptionClass`` header, so the official ``rucio`` client raises its own matching exception.
Errors are mapped to responses once, in the server's error handler, and back into these classes
once, in the client.

    LacusError
    ├── InvalidInput (400)
    │   ├── InvalidName
    │   ├── InvalidMetadataFilter
    │   ├── InvalidRSEExpression
    │   ├── InvalidRequest
    │   └── InvalidOption
    ├── Unauthenticated (401)
    ├── AccessDenied (403)
    │   └── RSEReadOnly
    ├── NotFound (404)
    │   ├── AccountNotFound, ScopeNotFound, DIDNotFound, RSENotFound, ReplicaNotFound,
    │   ├── RuleNotFound, SubscriptionNotFound, PolicyNotFound, ProtocolNotFound,
    │   └── StorageFileNotFound, LocalFileError
    ├── AlreadyExists (409)
    │   └── AccountAlreadyExists, ScopeAlreadyExists, DIDAlreadyExists, RSEAlreadyExists,
    │       ReplicaAlreadyExists, FileAlreadyOnStorage, DuplicateRule,
    │       SubscriptionDuplicate
    ├── UnsupportedOperation (409)
    ├── RuleStuck (409)
    ├── InsufficientAccountLimit (400), InsufficientTargetRSEs (400)
    ├── PayloadTooLarge (413)
    ├── ChecksumMismatch (422)
    ├── StorageError (502)
    │   ├── StorageFull (507)
    │   ├── StoragePermissionDenied (403)
    │   ├── StorageUnavailable (503)
    │   └── ListingOutOfOrder
    ├── ServerUnavailable (503)
    └── ServerError (500)
"""

from __future__ import annotations

from typing import ClassVar


class LacusError(Exception):
    """Base of every error Lacus raises on purpose."""

    http_status: ClassVar[int] = 500
    rucio_class: ClassVar[str] = "RucioException"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.__class__.__doc__ or self.__class__.__name__)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class InvalidInput(LacusError):
    """The input is not valid."""

    http_status = 400
    rucio_class = "InvalidObject"


class InvalidName(InvalidInput):
    """A scope or name is not valid."""


class InvalidMetadataFilter(InvalidInput):
    """A metadata filter cannot be parsed."""


class InvalidRSEExpression(InvalidInput):
    """An RSE expression cannot be parsed or matches no RSE."""

    rucio_class = "InvalidRSEExpression"


class InvalidRequest(InvalidInput):
    """The request is malformed."""


class InvalidOption(InvalidInput):
    """An option is unknown or has a value of the wrong kind."""

    rucio_class = "InputValidationError"


class Unauthenticated(LacusError):
    """Cannot authenticate."""

    http_status = 401
    rucio_class = "CannotAuthenticate"


class AccessDenied(LacusError):
    """The account may not do this."""

    http_status = 403
    rucio_class = "AccessDenied"


class RSEReadOnly(AccessDenied):
    """The RSE is read-only: Lacus never writes to it."""

    rucio_class = "RSEWriteBlocked"


class NotFound(LacusError):
    """The resource does not exist."""

    http_status = 404
    rucio_class = "RucioException"


class AccountNotFound(NotFound):
    """The account does not exist."""

    rucio_class = "AccountNotFound"


class ScopeNotFound(NotFound):
    """The scope does not exist."""

    rucio_class = "ScopeNotFound"


class DIDNotFound(NotFound):
    """The DID does not exist."""

    rucio_class = "DataIdentifierNotFound"


class RSENotFound(NotFound):
    """The RSE does not exist."""

    rucio_class = "RSENotFound"


class RuleNotFound(NotFound):
    """The rule does not exist."""

    rucio_class = "RuleNotFound"


class SubscriptionNotFound(NotFound):
    """The subscription does not exist."""

    rucio_class = "SubscriptionNotFound"


class PolicyNotFound(NotFound):
    """The lifecycle policy does not exist."""

    rucio_class = "RucioException"


class ReplicaNotFound(NotFound):
    """The replica does not exist."""

    rucio_class = "ReplicaNotFound"


class ProtocolNotFound(NotFound):
    """The RSE has no protocol this client can use."""

    rucio_class = "RSEProtocolNotSupported"


class StorageFileNotFound(NotFound):
    """The file does not exist on the storage."""

    rucio_class = "SourceNotFound"


class LocalFileError(NotFound):
    """A local file cannot be read or written."""

    rucio_class = "InputValidationError"


class AlreadyExists(LacusError):
    """The resource exists already."""

    http_status = 409
    rucio_class = "Duplicate"


class AccountAlreadyExists(AlreadyExists):
    """The account exists already."""


class ScopeAlreadyExists(AlreadyExists):
    """The scope exists already."""


class DIDAlreadyExists(AlreadyExists):
    """The DID exists already."""

    rucio_class = "DataIdentifierAlreadyExists"


class RSEAlreadyExists(AlreadyExists):
    """The RSE exists already."""


class DuplicateRule(AlreadyExists):
    """The same rule exists already."""

    rucio_class = "DuplicateRule"


class SubscriptionDuplicate(AlreadyExists):
    """A subscription of this name exists already for the account."""

    rucio_class = "SubscriptionDuplicate"


class ReplicaAlreadyExists(AlreadyExists):
    """The replica exists already."""


class SourceFileMissing(StorageFileNotFound):
    """A transfer's source replica is not on its storage: it is bad."""


class FileAlreadyOnStorage(AlreadyExists):
    """A file exists already at this path on the storage."""

    rucio_class = "FileReplicaAlreadyExists"


class UnsupportedOperation(LacusError):
    """The operation is not possible in the resource's current state."""

    http_status = 409
    rucio_class = "UnsupportedOperation"


class RuleReplaceFailed(UnsupportedOperation):
    """A rule could not be replaced (reduced) without new transfers or at all."""

    rucio_class = "RuleReplaceFailed"


class RuleStuck(LacusError):
    """A rule cannot be satisfied: a copy it needs failed for good, or it found no place
    (``Client.make_available`` raises it with the rule's error)."""

    http_status = 409
    rucio_class = "RucioException"


class InsufficientAccountLimit(LacusError):
    """The account's quota cannot hold what the rule asks for."""

    http_status = 400
    rucio_class = "InsufficientAccountLimit"


class InsufficientTargetRSEs(LacusError):
    """Too few RSEs can take the copies a rule asks for."""

    http_status = 400
    rucio_class = "InsufficientTargetRSEs"


class PayloadTooLarge(LacusError):
    """The request body is too large."""

    http_status = 413
    rucio_class = "InputValidationError"


class ChecksumMismatch(LacusError):
    """The bytes on the storage do not match the expected size or checksum."""

    http_status = 422
    rucio_class = "FileConsistencyMismatch"


class SourceCorrupted(ChecksumMismatch):
    """A transfer's source replica holds bytes that do not match the catalog: it is bad."""


class StorageError(LacusError):
    """The storage failed."""

    http_status = 502
    rucio_class = "ServiceUnavailable"


class ListingOutOfOrder(StorageError):
    """A storage listing or catalog snapshot was not sorted: an audit comparing it would
    report false differences, so it stops instead."""


class StorageFull(StorageError):
    """The storage has no space left."""

    http_status = 507
    rucio_class = "RSEWriteBlocked"


class StoragePermissionDenied(StorageError):
    """The storage refused access."""

    http_status = 403
    rucio_class = "RSEAccessDenied"


class StorageUnavailable(StorageError):
    """The storage cannot be reached."""

    http_status = 503
    rucio_class = "RSEAccessDenied"


class ServerUnavailable(LacusError):
    """The Lacus server cannot be reached."""

    http_status = 503
    rucio_class = "ServiceUnavailable"


class ServerError(LacusError):
    """The server failed unexpectedly."""

    http_status = 500
    rucio_class = "RucioException"


def _all_subclasses(cls: type[LacusError]) -> list[type[LacusError]]:
    found: list[type[LacusError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


def error_class(name: str) -> type[LacusError]:
    """The Lacus error class called ``name`` (sent in ``X-Lacus-Error``), else LacusError."""
    candidates: list[type[LacusError]] = [LacusError, *_all_subclasses(LacusError)]
    for candidate in candidates:
        if candidate.__name__ == name:
            return candidate
    return LacusError
