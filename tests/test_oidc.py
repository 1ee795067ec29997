"""OIDC / JWT bearer tokens against a real issuer on loopback, through the real HTTP server.

The issuer is a ``http.server`` in a thread: it publishes the public halves of its own RSA and EC
keys as a JWKS (counting every fetch) and signs tokens with PyJWT. The lake trusts it through
``settings.oidc_issuers``, as ``lake.json`` would configure it. Each test runs on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from lacus.client import Client
from lacus.errors import AccessDenied, AlreadyExists, InvalidInput, Unauthenticated
from lacus.service import accounts
from lacus.service.lake import Principal
from lacus.service.settings import OIDCIssuer, load_settings
from tests.conftest import ROOT_PASSWORD, RunningServer
from tests.test_rest import assert_error, login

AUDIENCE = "lacus"
ROOT = Principal("root", admin=True)
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


# -- the issuer ----------------------------------------------------------------------------------


class Issuer:
    """A real OIDC issuer: serves ``/.well-known/jwks.json`` over HTTP and signs tokens."""

    def __init__(self) -> None:
        self.keys: dict[str, PrivateKey] = {
            "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec-1": ec.generate_private_key(ec.SECP256R1()),
        }
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        """A key the issuer never publishes."""
        self.published: list[str] = []
        self.status = 200
        self.hits = 0
        self._lock = threading.Lock()
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with issuer._lock:
                    issuer.hits += 1
                    status, body = issuer.status, issuer.jwks_bytes()
                if self.path != "/.well-known/jwks.json":
                    status, body = 404, b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.jwks_url = f"{self.url}/.well-known/jwks.json"
        self._thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()

    def reset(self) -> None:
        with self._lock:
            self.published, self.status, self.hits = ["rsa-1", "ec-1"], 200, 0

    def add_key(self, kid: str) -> None:
        """Key rotation: a new RSA key appears in the JWKS."""
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with self._lock:
            self.published.append(kid)

    def public_jwk(self, kid: str) -> dict[str, Any]:
        public = self.keys[kid].public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk: dict[str, Any] = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        return {**jwk, "kid": kid, "use": "sig"}

    def jwks_bytes(self) -> bytes:
        return json.dumps({"keys": [self.public_jwk(kid) for kid in self.published]}).encode()

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": str(uuid.uuid4()),
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": str(uuid.uuid4()),
        }
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not None}

    def sign(self, kid: str = "rsa-1", *, key: PrivateKey | None = None, **claims: Any) -> str:
        alg = "ES256" if kid.startswith("ec") else "RS256"
        return jwt.encode(
            self.claims(**claims), key or self.keys[kid], algorithm=alg, headers={"kid": kid}
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(signature)}"


@pytest.fixture(scope="session")
def issuer_server() -> Iterator[Issuer]:
    issuer = Issuer()
    yield issuer
    issuer.close()


@pytest.fixture
def issuer(
    issuer_server: Issuer,
    server: RunningServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Issuer]:
    """The issuer, trusted by the test server's lake for this test; accounts alice and bob."""
    issuer_server.reset()
    trusted = OIDCIssuer(
        issuer=issuer_server.url, jwks_url=issuer_server.jwks_url, audience=AUDIENCE
    )
    monkeypatch.setattr(server.lake.settings, "oidc_issuers", [trusted])
    for name in ("LACUS_URL", "LACUS_ACCOUNT", "LACUS_PASSWORD", "LACUS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LACUS_CONFIG", str(tmp_path / "client.json"))
    server.lake.reset_auth_caches()
    accounts.add_account(server.lake, ROOT, "alice")
    accounts.add_account(server.lake, ROOT, "bob")
    yield issuer_server
    monkeypatch.undo()
    server.lake.reset_auth_caches()


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    """Raw HTTP to the test server, without a token."""
    with httpx.Client(base_url=server.url) as raw:
        yield raw


def whoami(http: httpx.Client, token: str, *, header: str = "Authorization") -> httpx.Response:
    value = f"Bearer {token}" if header == "Authorization" else token
    return http.get("/accounts/whoami", headers={header: value})


def account_of(http: httpx.Client, token: str) -> str:
    response = whoami(http, token)
    assert response.status_code == 200, response.headers.get("ExceptionMessage")
    account: str = response.json()["account"]
    return account


def refused(http: httpx.Client, token: str) -> str:
    """The readable message of a 401 CannotAuthenticate for ``token``."""
    return assert_error(whoami(http, token), 401, "CannotAuthenticate")


# -- configuration -------------------------------------------------------------------------------


def test_issuers_are_configured_in_lake_json(tmp_path: Path) -> None:
    issuer = {
        "issuer": "https://iam-escape.cloud.cnaf.infn.it/",
        "jwks_url": "https://iam-escape.cloud.cnaf.infn.it/jwk",
        "audience": ["lacus", "rucio"],
    }
    config = {"database_url": "sqlite:///x.db", "oidc_issuers": [issuer]}
    (tmp_path / "lake.json").write_text(json.dumps(config))
    (loaded,) = load_settings(tmp_path).oidc_issuers
    assert loaded.audiences == ["lacus", "rucio"]
    assert (loaded.account_claim, loaded.algorithms) == ("preferred_username", ["RS256", "ES256"])

    issuer["algorithms"] = ["RS256", "HS256"]
    (tmp_path / "lake.json").write_text(json.dumps(config))
    with pytest.raises(InvalidInput, match=r"algorithms.*not HS256"):
        load_settings(tmp_path)


# -- tokens that authenticate --------------------------------------------------------------------


def test_a_mapped_identity_authenticates_as_its_account(
    server: RunningServer, issuer: Issuer, http: httpx.Client
) -> None:
    with Client(server.url, account="root", password=ROOT_PASSWORD) as root:
        root.add_oidc_identity("alice", "alice-subject", issuer.url)
    # The mapped identity wins over the account claim.
    token = issuer.sign(sub="alice-subject", preferred_username="bob")
    assert account_of(http, token) == "alice"
    with Client(server.url, token=token) as alice:
        assert alice.whoami()["account"] == "alice"
    rucio_style = whoami(http, token, header="X-Rucio-Auth-Token")
    assert rucio_style.json()["account"] == "alice"


def test_the_account_claim_names_the_account(
    server: RunningServer, issuer: Issuer, http: httpx.Client
) -> None:
    assert account_of(http, issuer.sign(preferred_username="bob")) == "bob"
    assert account_of(http, issuer.sign("ec-1", preferred_username="bob")) == "bob"  # ES256
    with Client(server.url, token=issuer.sign(preferred_username="alice")) as alice:
        assert alice.whoami()["account"] == "alice"


def test_a_configured_account_claim_is_used(
    server: RunningServer, issuer: Issuer, http: httpx.Client
) -> None:
    custom = server.lake.settings.oidc_issuers[0].model_copy(update={"account_claim": "lacus"})
    server.lake.settings.oidc_issuers = [custom]
    assert account_of(http, issuer.sign(lacus="alice", preferred_username="bob")) == "alice"


def test_validate_reports_the_jwt_expiry(server: RunningServer, issuer: Issuer) -> None:
    token = issuer.sign(preferred_username="bob", exp=int(time.time()) + 120)
    response = httpx.get(f"{server.url}/auth/validate", headers={"X-Rucio-Auth-Token": token})
    assert response.status_code == 200, response.headers.get("ExceptionMessage")
    assert response.json()["account"] == "bob"
    assert 0 < response.json()["seconds_left"] <= 120


# -- tokens that do not ----------------------------------------------------------------------------


def _refusals(issuer: Issuer) -> dict[str, tuple[str, str]]:
    """Bad tokens, each with the words its refusal must contain."""
    now = int(time.time())
    good = issuer.sign(preferred_username="alice")
    head, body, signature = good.split(".")
    public_pem = (
        issuer.keys["rsa-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    confused = _forge(
        {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, issuer.claims(preferred_username="root")
    )
    head_hs, body_hs, _ = confused.split(".")
    hs_signature = hmac.new(public_pem, f"{head_hs}.{body_hs}".encode(), hashlib.sha256).digest()
    as_root = _b64(json.dumps(issuer.claims(preferred_username="root")).encode())
    stranger = issuer.stranger
    return {
        "expired": (issuer.sign(preferred_username="alice", exp=now - 120), "expired"),
        "not yet valid": (
            issuer.sign(preferred_username="alice", nbf=now + 3600),
            "not valid yet",
        ),
        "issued in the future": (
            issuer.sign(preferred_username="alice", iat=now + 3600),
            "not valid yet",
        ),
        "no expiry": (issuer.sign(preferred_username="alice", exp=None), "no 'exp' claim"),
        "wrong audience": (
            issuer.sign(preferred_username="alice", aud="another-service"),
            "audience",
        ),
        "no audience": (issuer.sign(preferred_username="alice", aud=None), "no 'aud' claim"),
        "untrusted issuer": (
            issuer.sign(preferred_username="alice", iss="https://evil.example.org"),
            "'https://evil.example.org' is not trusted",
        ),
        "tampered signature": (
            f"{head}.{body}.{signature[:20]}{'A' if signature[20] != 'A' else 'B'}{signature[21:]}",
            "signature does not verify",
        ),
        "claims changed to root": (f"{head}.{as_root}.{signature}", "signature does not verify"),
        "signed by a stranger's key": (
            issuer.sign(key=stranger, preferred_username="alice"),
            "signature does not verify",
        ),
        "unknown kid": (
            issuer.sign("rsa-ghost", key=stranger, preferred_username="alice"),
            "key id 'rsa-ghost' is not among the keys",
        ),
        "no kid": (
            _forge({"alg": "RS256"}, issuer.claims(preferred_username="alice"), b"x" * 256),
            "no 'kid'",
        ),
        "alg none": (
            _forge({"alg": "none", "kid": "rsa-1"}, issuer.claims(preferred_username="root")),
            "alg 'none'",
        ),
        "HS256 with the public key": (f"{head_hs}.{body_hs}.{_b64(hs_signature)}", "'HS256'"),
        "unknown account": (
            issuer.sign(preferred_username="nobody"),
            "maps to no Lacus account",
        ),
        "no account claim": (issuer.sign(), "no 'preferred_username' claim"),
        "not a JWT": ("eyJhbGciOiJub25lIn0.bm90IGpzb24.", "not a well-formed JWT"),
    }


def test_bad_tokens_get_401_with_a_readable_reason(
    server: RunningServer, issuer: Issuer, http: httpx.Client
) -> None:
    modulus = issuer.public_jwk("rsa-1")["n"]
    for case, (token, reason) in _refusals(issuer).items():
        message = refused(http, token)
        assert reason in message, f"{case}: {message}"
        assert modulus[:16] not in message, f"{case} shows key material"
        assert "BEGIN" not in message, f"{case} shows key material"
        with Client(server.url, token=token) as bearer, pytest.raises(Unauthenticated) as caught:
            bearer.whoami()
        assert reason in str(caught.value), case


def test_a_jwt_is_not_remembered_past_its_expiry(
    server: RunningServer, issuer: Issuer, http: httpx.Client
) -> None:
    # Expired ten seconds ago, but within the 30 s clock-skew leeway: accepted once...
    token = issuer.sign(preferred_username="alice", exp=int(time.time()) - 10)
    assert account_of(http, token) == "alice"
    strict = server.lake.settings.oidc_issuers[0].model_copy(update={"leeway_seconds": 0})
    server.lake.settings.oidc_issuers = [strict]
    # ...and checked again on the next request rather than served from the token cache.
    assert "expired" in refused(http, token)


def test_an_inactive_account_cannot_use_a_jwt(
    server: RunningServer, issuer: Issuer, http: httpx.Client
) -> None:
    from sqlalchemy import update

    from lacus.db.tables import accounts as accounts_table

    with server.lake.write() as conn:
        conn.execute(
            update(accounts_table)
            .where(accounts_table.c.account == "bob")
            .values(status="suspended")
        )
    assert "'bob' is suspended" in refused(http, issuer.sign(preferred_username="bob"))


# -- keys: caching, rotation, outages ------------------------------------------------------------


def test_keys_are_fetched_once_for_many_tokens(issuer: Issuer, http: httpx.Client) -> None:
    tokens = [issuer.sign(preferred_username="alice") for _ in range(20)]
    tokens += [issuer.sign("ec-1", preferred_username="bob") for _ in range(20)]
    for token in tokens * 3:
        assert account_of(http, token) in ("alice", "bob")
    assert issuer.hits == 1


def test_a_rotated_key_is_picked_up_with_one_refetch(
    server: RunningServer, issuer: Issuer, http: httpx.Client
) -> None:
    assert account_of(http, issuer.sign(preferred_username="alice")) == "alice"
    assert issuer.hits == 1
    issuer.add_key("rsa-2")
    assert account_of(http, issuer.sign("rsa-2", preferred_username="bob")) == "bob"
    assert issuer.hits == 2
    assert account_of(http, issuer.sign("rsa-2", preferred_username="alice")) == "alice"
    assert issuer.hits == 2


def test_a_flood_of_unknown_kids_does_not_hammer_the_issuer(
    server: RunningServer, issuer: Issuer, http: httpx.Client
) -> None:
    stranger = issuer.stranger
    assert account_of(http, issuer.sign(preferred_username="alice")) == "alice"
    for index in range(30):
        token = issuer.sign(f"rsa-bogus-{index}", key=stranger, preferred_username="alice")
        assert "is not among the keys" in refused(http, token)
    assert issuer.hits == 2  # the first fetch, and one refetch for the first unknown kid


def test_an_unreachable_issuer_gets_401_not_500(
    server: RunningServer, issuer: Issuer, http: httpx.Client
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    down = server.lake.settings.oidc_issuers[0].model_copy(
        update={"jwks_url": f"http://127.0.0.1:{closed_port}/jwks.json"}
    )
    server.lake.settings.oidc_issuers = [down]
    message = refused(http, issuer.sign(preferred_username="alice"))
    assert f"cannot fetch the signing keys of issuer '{issuer.url}'" in message


@pytest.mark.parametrize(("status", "reason"), [(503, "HTTP 503"), (404, "HTTP 404")])
def test_an_issuer_answering_errors_gets_401(
    server: RunningServer, issuer: Issuer, http: httpx.Client, status: int, reason: str
) -> None:
    issuer.status = status
    message = refused(http, issuer.sign(preferred_username="alice"))
    assert "cannot fetch the signing keys" in message
    assert reason in message


def test_an_outage_after_keys_were_fetched_keeps_users_in(
    server: RunningServer, issuer: Issuer, http: httpx.Client
) -> None:
    always_stale = server.lake.settings.oidc_issuers[0].model_copy(update={"jwks_cache_seconds": 0})
    server.lake.settings.oidc_issuers = [always_stale]
    assert account_of(http, issuer.sign(preferred_username="alice")) == "alice"
    issuer.status = 503
    for _ in range(5):
        assert account_of(http, issuer.sign(preferred_username="bob")) == "bob"
    assert issuer.hits == 2  # one failed refetch, then no retry within the minimum interval


# -- mapping identities over REST ------------------------------------------------------------------


def test_identities_are_mapped_by_admins_in_rucio_s_dialect(
    server: RunningServer, issuer: Issuer, http: httpx.Client
) -> None:
    url = "/accounts/bob/identities"
    root = {"X-Rucio-Auth-Token": login(server.url)}
    body = {"identity": f"SUB=bob-sub, ISS={issuer.url}", "authtype": "OIDC", "email": "b@x.org"}
    assert http.post(url, json=body, headers=root).status_code == 201
    assert account_of(http, issuer.sign(sub="bob-sub")) == "bob"
    assert_error(http.post(url, json=body, headers=root), 409, "Duplicate")
    userpass = {"identity": "bob", "type": "userpass"}
    assert_error(http.post(url, json=userpass, headers=root), 400, "InvalidObject")
    no_issuer = {"identity": "bob-sub", "type": "oidc"}
    assert_error(http.post(url, json=no_issuer, headers=root), 400, "InvalidObject")
    unknown = "/accounts/nobody/identities"
    oidc = {"identity": "x", "issuer": issuer.url, "type": "oidc"}
    assert_error(http.post(unknown, json=oidc, headers=root), 404, "AccountNotFound")

    with (
        Client(server.url, token=issuer.sign(sub="bob-sub")) as bob,
        pytest.raises(AccessDenied, match="admins only"),
    ):
        bob.add_oidc_identity("bob", "another-sub", issuer.url)
    with Client(server.url, account="root", password=ROOT_PASSWORD) as admin:
        with pytest.raises(AlreadyExists):
            admin.add_oidc_identity("bob", "bob-sub", issuer.url)
        with pytest.raises(InvalidInput):
            admin.add_oidc_identity("bob", "x" * 250, issuer.url)
