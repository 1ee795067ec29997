"""A lake: its settings, its catalog engine, and the transactions use cases run in."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from lacus.core import accounts, rses
from lacus.core.clock import utcnow
from lacus.db import is_deadlock, make_engine, transaction, upgrade
from lacus.errors import AccessDenied, AlreadyExists
from lacus.service.event_log import EventLog
from lacus.service.kept import RSEConfigs, ScopeOwners
from lacus.service.oidc import OIDCVerifier
from lacus.service.settings import Settings, default_database_url, write_settings
from lacus.storage.posix import DIR_MODE
from lacus.types import AccountType, ProtocolInfo, RSEType, Viewer

T = TypeVar("T")

ROOT = "root"
ANALYZE_AFTER_ROWS = 5000

DEMO_RSES: list[tuple[str, dict[str, str], RSEType]] = [
    ("ALPHA_DISK", {"site": "ALPHA", "qos": "DISK", "country": "CH"}, RSEType.DISK),
    ("BETA_DISK", {"site": "BETA", "qos": "DISK", "country": "NL"}, RSEType.DISK),
    ("GAMMA_TAPE", {"site": "GAMMA", "qos": "TAPE", "country": "ES"}, RSEType.TAPE),
]
"""The three POSIX RSEs every new lake starts with."""


@dataclass(frozen=True, slots=True)
class Principal(Viewer):
    """Who is asking: an authenticated account (it reads as a Viewer)."""

    storage_scopes: frozenset[tuple[str, str]] | None = None
    """The WLCG ``storage.*`` scopes the token is limited to, as (capability, path) pairs
    (``("read", "/virgo")``); None: the account's full rights (see ``service.token_scopes``)."""

    def require_admin(self, action: str) -> None:
        if not self.admin:
            raise AccessDenied(f"account {self.account!r} may not {action}: admins only")
        if self.storage_scopes is not None:
            raise AccessDenied(
                f"a token limited to storage scopes may not {action}: use a token of account "
                f"{self.account!r} without storage.* scopes"
            )


class Lake:
    """The catalog of one lake and the transactions to use it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        self._token_cache: dict[str, tuple[Principal, datetime, float]] = {}
        self._token_lock = threading.Lock()
        self._oidc: OIDCVerifier | None = None
        self._analyzed_at = 0.0
        self._wakeups: dict[str, threading.Event] = {}
        self._daemon_gate = threading.Condition()
        self._daemons_paused = False
        self._daemon_passes = 0
        self._event_log: EventLog | None = None
        self.rse_configs = RSEConfigs()
        """RSE configurations for hot paths (at most a second old; see ``service.kept``)."""
        self.scope_owners = ScopeOwners()

    def forget_kept(self) -> None:
        """Forget what is kept in memory (tokens, RSE configurations, scope owners): for a
        catalog emptied or restored under this lake."""
        with self._token_lock:
            self._token_cache.clear()
        self.rse_configs.clear()
        self.scope_owners.clear()

    @contextmanager
    def daemon_pass(self) -> Iterator[bool]:
        """Around one pass of an in-process daemon: yields False (skip the pass) while paused."""
        with self._daemon_gate:
            allowed = not self._daemons_paused
            if allowed:
                self._daemon_passes += 1
        if not allowed:
            yield False
            return
        try:
            yield True
        finally:
            with self._daemon_gate:
                self._daemon_passes -= 1
                self._daemon_gate.notify_all()

    def pause_daemons(self, timeout: float = 60.0) -> None:
        """Stop in-process daemons from starting passes; wait for the running ones to end."""
        with self._daemon_gate:
            self._daemons_paused = True
            self._daemon_gate.wait_for(lambda: self._daemon_passes == 0, timeout)

    def resume_daemons(self) -> None:
        with self._daemon_gate:
            self._daemons_paused = False
        for event in list(self._wakeups.values()):
            event.set()

    def wake(self, *daemons: str) -> None:
        """Tell in-process daemons there is new work for them."""
        for daemon in daemons:
            self.wakeup(daemon).set()

    def wakeup(self, daemon: str) -> threading.Event:
        """The event an in-process daemon waits on between passes."""
        with self._token_lock:
            return self._wakeups.setdefault(daemon, threading.Event())

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One read-write transaction, committed when the block ends; readers of the event log
        are woken if it wrote events, kept RSE configurations forgotten if it changed any."""
        rses_changed = False
        try:
            with transaction(self.engine, write=True, after_events=self._events_committed) as conn:
                try:
                    yield conn
                finally:
                    rses_changed = conn.info.pop(rses.CHANGED, False)
        finally:
            if rses_changed:
                self.rse_configs.clear()

    def write_retrying(self, body: Callable[[Connection], T], *, attempts: int = 3) -> T:
        """``body`` in one read-write transaction (``write``), run again from its start when
        PostgreSQL aborted the transaction to break a deadlock with a concurrent one (a daemon
        touching the same rows in another order): nothing of the aborted attempt remains."""
        for attempt in range(1, attempts + 1):
            try:
                with self.write() as conn:
                    return body(conn)
            except OperationalError as exc:
                if attempt == attempts or not is_deadlock(exc):
                    raise
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _events_committed(self) -> None:
        if self._event_log is not None:  # nobody in this process follows events otherwise
            self._event_log.notify()

    @property
    def event_log(self) -> EventLog:
        """The event log of this process (created on first use)."""
        if self._event_log is None:
            with self._token_lock:
                if self._event_log is None:
                    self._event_log = EventLog(self.engine)
        return self._event_log

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One read-only transaction."""
        with transaction(self.engine, write=False) as conn:
            yield conn

    def refresh_statistics(self, *, rows_added: int) -> None:
        """After a bulk load, let PostgreSQL's planner see the new rows (at most once a minute).

        Without fresh statistics (autovacuum off or not yet run) the planner reads a
        10,000-replica dataset with sequential scans: 3-4 times slower listings.
        """
        if self.engine.dialect.name != "postgresql" or rows_added < ANALYZE_AFTER_ROWS:
            return
        now = time.monotonic()
        if now - self._analyzed_at < 60:
            return
        self._analyzed_at = now
        with self.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE dids, replicas, contents")
            conn.commit()

    def cached_principal(self, token: str) -> Principal | None:
        with self._token_lock:
            hit = self._token_cache.get(token)
        if hit is None:
            return None
        principal, expires_at, cached_at = hit
        if (
            time.monotonic() - cached_at > self.settings.token_cache_seconds
            or expires_at <= utcnow()
        ):
            with self._token_lock:
                self._token_cache.pop(token, None)
            return None
        return principal

    def cache_principal(self, token: str, principal: Principal, expires_at: datetime) -> None:
        """Remember ``principal`` for ``token`` until ``expires_at`` (the token's own expiry, e.g.
        a JWT's ``exp``) or for ``token_cache_seconds``, whichever comes first."""
        with self._token_lock:
            if len(self._token_cache) > 10_000:
                self._token_cache.clear()
            self._token_cache[token] = (principal, expires_at, time.monotonic())

    def forget_token(self, token: str) -> None:
        """Drop ``token`` from the cache of validated tokens (it was revoked)."""
        with self._token_lock:
            self._token_cache.pop(token, None)

    def oidc(self) -> OIDCVerifier:
        """The verifier of JWT bearer tokens, built on first use and whenever the configured
        issuers change (it caches their keys)."""
        with self._token_lock:
            verifier = self._oidc
            if verifier is None or verifier.issuers != self.settings.oidc_issuers:
                if verifier is not None:
                    verifier.close()
                verifier = self._oidc = OIDCVerifier(self.settings)
            return verifier

    def reset_auth_caches(self) -> None:
        """Forget validated tokens and cached issuer keys (after changing issuers or identities)."""
        with self._token_lock:
            self._token_cache.clear()
            if self._oidc is not None:
                self._oidc.close()
            self._oidc = None

    def close(self) -> None:
        if self._event_log is not None:
            self._event_log.close()
        self.reset_auth_caches()
        self.engine.dispose()


def init_lake(
    lake_dir: str | Path,
    *,
    root_password: str | None = None,
    database_url: str | None = None,
    with_rses: bool = True,
) -> tuple[Settings, str]:
    """Create a lake in ``lake_dir``: config, migrated catalog, root account, three POSIX RSEs.

    Returns the settings and the root password (generated when not given).
    """
    lake_dir = Path(lake_dir).resolve()
    if (lake_dir / "lake.json").exists():
        raise AlreadyExists(f"{lake_dir} holds a lake already")
    # A directory made for the lake is not world-readable; an existing one keeps its modes.
    lake_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    password = root_password or secrets.token_urlsafe(18)
    settings = Settings(
        lake_dir=lake_dir, database_url=database_url or default_database_url(lake_dir)
    )
    lake = Lake(settings)
    try:
        upgrade(lake.engine)
        with lake.write() as conn:
            seed_catalog(conn, password, lake_dir if with_rses else None)
    finally:
        lake.close()
    write_settings(settings)
    return settings, password


def seed_catalog(conn: Connection, root_password: str, rse_root: Path | None) -> None:
    """The root account, its identity and scope, and (with ``rse_root``) the demo RSEs."""
    accounts.add_account(conn, ROOT, account_type=AccountType.SERVICE, admin=True)
    accounts.add_userpass(conn, ROOT, ROOT, root_password)
    if rse_root is None:
        return
    _private_directory(rse_root / "rses")
    for name, attributes, rse_type in DEMO_RSES:
        prefix = rse_root / "rses" / name
        _private_directory(prefix)
        rse_id = rses.add_rse(conn, name, rse_type=rse_type, attributes=attributes)
        rses.add_protocol(
            conn,
            rse_id,
            ProtocolInfo(scheme="file", hostname="", port=0, prefix=str(prefix), impl="posix"),
        )


def _private_directory(path: Path) -> None:
    """``path`` made if needed, with the modes of a POSIX RSE's directories (not
    world-readable)."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    path.chmod(DIR_MODE)
