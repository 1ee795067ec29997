"""OIDC bearer tokens: verify a JWT against the keys its (configured) issuer publishes.

The verifier only answers "is this JWT genuine, current and meant for us, and who is it about";
mapping the subject to an account is the caller's job (``service.auth``). Each issuer's JWKS is
fetched with httpx and cached for ``jwks_cache_seconds``. A token whose ``kid`` is not in the cache
forces one refetch (key rotation), at most once per ``jwks_min_refetch_seconds``, so a flood of
made-up key ids cannot hammer the issuer; a failed fetch is not retried sooner either, and keys
fetched earlier stay in use while the issuer cannot be reached.

Every failure raises ``Unauthenticated`` with a message naming what is wrong; messages never
carry key material or the token itself.

Tokens of the WLCG Common JWT Profile say more: ``wlcg.groups`` (``["/virgo", "/virgo/prod"]``)
may pick the account (the issuer's ``group_accounts``, first mapped group in the token's order)
and make the bearer an admin (``admin_groups``); ``storage.*`` scopes in ``scope`` limit the
token to them (``service.token_scopes``), and then, as the profile asks, groups no longer grant
anything (they still pick the account: the "VO" the scopes apply within).
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import orjson

from lacus.errors import Unauthenticated
from lacus.service.settings import OIDCIssuer, Settings
from lacus.service.token_scopes import StorageScopes, parse_storage_scopes

log = logging.getLogger("lacus.oidc")

FETCH_TIMEOUT = 5.0
"""Seconds to wait for an issuer's JWKS."""

MAX_JWKS_BYTES = 1_000_000

_JWT_RE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_NEVER = float("-inf")


def looks_like_jwt(token: str) -> bool:
    """True for three base64url segments (opaque Lacus tokens never contain a dot)."""
    return _JWT_RE.fullmatch(token) is not None


def _show(value: object) -> str:
    """A value from the token, quoted and cut short for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What a genuine, current JWT says about its bearer."""

    issuer: str
    subject: str
    account_claim: str
    claimed_account: str | None  # the value of ``account_claim``, when it is a string
    expires_at: datetime  # naive UTC, like every catalog time
    groups: tuple[str, ...] = ()  # ``wlcg.groups``, in the token's order
    admin: bool = False  # a member of one of the issuer's ``admin_groups`` (no storage scopes)
    storage_scopes: StorageScopes | None = None  # None: no ``storage.*`` scope, no limit


class _IssuerKeys:
    """The cached JWKS of one issuer: raw JWKs by ``kid``, and their parsed keys by algorithm."""

    def __init__(
        self, config: OIDCIssuer, http: Callable[[], httpx.Client], clock: Callable[[], float]
    ) -> None:
        self.config = config
        self._http = http
        self._clock = clock
        self._lock = threading.Lock()
        self._jwks: dict[str, dict[str, Any]] = {}
        self._parsed: dict[tuple[str, str], jwt.PyJWK] = {}
        self._fetched_at = _NEVER
        self._forced_at = _NEVER
        self._failed_at = _NEVER
        self._failure = ""

    def key(self, kid: str, alg: str) -> jwt.PyJWK:
        """The issuer's key ``kid`` for ``alg``, fetching the JWKS when stale or ``kid`` is new."""
        with self._lock:
            now = self._clock()
            fetched = False
            if now - self._fetched_at >= self.config.jwks_cache_seconds:
                fetched = self._refresh(now)
            if (
                kid not in self._jwks
                and not fetched
                and now - self._forced_at >= self.config.jwks_min_refetch_seconds
            ):
                self._forced_at = now
                self._refresh(now)
            jwk = self._jwks.get(kid)
            if jwk is None:
                raise Unauthenticated(
                    f"the JWT's key id {_show(kid)} is not among the keys of issuer "
                    f"{self.config.issuer!r}"
                )
            parsed = self._parsed.get((kid, alg))
            if parsed is None:
                parsed = self._parse(kid, jwk, alg)
                self._parsed[(kid, alg)] = parsed
            return parsed

    def _parse(self, kid: str, jwk: dict[str, Any], alg: str) -> jwt.PyJWK:
        declared = jwk.get("alg")
        if declared is not None and declared != alg:
            raise Unauthenticated(
                f"the JWT is signed with {_show(alg)} but key {_show(kid)} of issuer "
                f"{self.config.issuer!r} is for {_show(declared)}"
            )
        try:
            return jwt.PyJWK(jwk, algorithm=alg)
        except jwt.PyJWTError:  # the key's type does not fit the algorithm
            raise Unauthenticated(
                f"key {_show(kid)} of issuer {self.config.issuer!r} cannot verify "
                f"{_show(alg)} signatures"
            ) from None

    def _refresh(self, now: float) -> bool:
        """Fetch the JWKS; True when it was fetched. Keeps stale keys when the issuer is down."""
        if now - self._failed_at < self.config.jwks_min_refetch_seconds:
            if self._jwks:
                return False
            raise Unauthenticated(self._failure)
        try:
            jwks = self._fetch()
        except Unauthenticated as exc:
            self._failed_at, self._failure = now, exc.message
            if self._jwks:
                log.warning("%s; using the keys fetched before", exc.message)
                return False
            raise
        self._jwks, self._parsed = jwks, {}
        self._fetched_at, self._failed_at, self._failure = now, _NEVER, ""
        return True

    def _fetch(self) -> dict[str, dict[str, Any]]:
        url = self.config.jwks_url
        prefix = f"cannot fetch the signing keys of issuer {self.config.issuer!r} from {url}"
        try:
            response = self._http().get(url)
        except httpx.HTTPError as exc:
            raise Unauthenticated(f"{prefix}: {type(exc).__name__}: {exc}"[:500]) from None
        if response.status_code != 200:
            raise Unauthenticated(f"{prefix}: HTTP {response.status_code}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise Unauthenticated(f"{prefix}: the JWKS is larger than {MAX_JWKS_BYTES} bytes")
        try:
            document = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise Unauthenticated(f"{prefix}: the answer is not JSON") from None
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise Unauthenticated(f"{prefix}: the answer has no 'keys' list")
        return {
            key["kid"]: key
            for key in keys
            if isinstance(key, dict)
            and isinstance(key.get("kid"), str)
            and key.get("use", "sig") == "sig"
        }


class OIDCVerifier:
    """Verifies JWT bearer tokens of the issuers in ``settings.oidc_issuers``."""

    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuers: list[OIDCIssuer] = [issuer.model_copy() for issuer in settings.oidc_issuers]
        self._client = http
        self._owns_client = http is None
        self._client_lock = threading.Lock()
        self._keys = {
            issuer.issuer: _IssuerKeys(issuer, self._http, clock) for issuer in self.issuers
        }

    def _http(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=True)
            return self._client

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None and self._owns_client:
                self._client.close()
            self._client = None

    def verify(self, token: str) -> VerifiedToken:
        """Check signature, issuer, audience and validity of ``token``; say whom it is about."""
        header, unverified = _peek(token)
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise Unauthenticated("the JWT has no 'iss' claim: cannot tell who issued it")
        keys = self._keys.get(issuer)
        if keys is None:
            raise Unauthenticated(f"the JWT's issuer {_show(issuer)} is not trusted by this lake")
        config = keys.config
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in config.algorithms:
            what = (
                "unsigned JWTs (alg 'none') are refused"
                if alg in (None, "none")
                else (f"the JWT is signed with {_show(alg)}")
            )
            raise Unauthenticated(
                f"{what}: issuer {issuer!r} may use {', '.join(config.algorithms)}"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("the JWT has no 'kid' header: cannot pick the issuer's key")
        key = keys.key(kid, alg)
        claims = _decode(token, key, alg, config, kid)
        storage_scopes = parse_storage_scopes(claims.get("scope"))
        groups = _groups(claims.get("wlcg.groups"))
        account_claim = config.account_claim
        claimed = claims.get(account_claim)
        mapped = [
            config.group_accounts[group] for group in groups if group in config.group_accounts
        ]
        if mapped:
            account_claim, claimed = "wlcg.groups", mapped[0]
        return VerifiedToken(
            issuer=issuer,
            subject=claims["sub"],
            account_claim=account_claim,
            claimed_account=claimed if isinstance(claimed, str) else None,
            expires_at=_naive_utc(int(claims["exp"])),
            groups=groups,
            admin=storage_scopes is None and not set(groups).isdisjoint(config.admin_groups),
            storage_scopes=storage_scopes,
        )


def _groups(claim: object) -> tuple[str, ...]:
    """The group names of a ``wlcg.groups`` claim (a JSON array of strings; anything else
    asserts no group)."""
    if not isinstance(claim, list):
        return ()
    return tuple(group for group in claim if isinstance(group, str))


def _naive_utc(timestamp: int) -> datetime:
    try:
        return datetime.fromtimestamp(timestamp, UTC).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError):
        return datetime.max


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of ``token``, unverified: only to choose the issuer, key and algorithm
    (``_decode`` then parses the token again, strictly, and checks everything)."""
    try:
        header_b64, claims_b64, _ = token.split(".")
        header = orjson.loads(_b64decode(header_b64))
        claims = orjson.loads(_b64decode(claims_b64))
    except (ValueError, orjson.JSONDecodeError):
        raise Unauthenticated("the bearer token is not a well-formed JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise Unauthenticated("the bearer token is not a well-formed JWT")
    return header, claims


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _decode(token: str, key: jwt.PyJWK, alg: str, config: OIDCIssuer, kid: str) -> dict[str, Any]:
    """The verified claims of ``token``, or Unauthenticated saying which check failed."""
    issuer = config.issuer
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=[alg],
            audience=config.audiences,
            issuer=issuer,
            leeway=config.leeway_seconds,
            options={"require": ["exp", "iss", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated(f"the JWT has expired: get a new token from {issuer}") from None
    except jwt.ImmatureSignatureError as exc:
        raise Unauthenticated(f"the JWT is not valid yet ({exc})") from None
    except jwt.InvalidAudienceError:
        raise Unauthenticated(
            f"the JWT's audience is not this lake: it must name {' or '.join(config.audiences)}"
        ) from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthenticated(f"the JWT has no {exc.claim!r} claim") from None
    except jwt.InvalidSignatureError:
        raise Unauthenticated(
            f"the JWT's signature does not verify with key {_show(kid)} of issuer {issuer!r}"
        ) from None
    except jwt.InvalidTokenError as exc:  # messages about claims and encoding, never keys
        raise Unauthenticated(f"the JWT is not valid: {str(exc)[:200]}") from None
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"the JWT is not valid ({type(exc).__name__})") from None
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise Unauthenticated("the JWT's 'sub' claim is not a string")
    return claims
