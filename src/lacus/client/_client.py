"""``lacus.Client``: the catalog over REST, plus verified uploads and downloads."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from lacus.client._http import Session, raise_for_error
from lacus.client.config import ClientConfig, load_config
from lacus.errors import InvalidInput
from lacus.naming import parse_did, validate_account, validate_rse, validate_scope
from lacus.types import MetaValue

Progress = Callable[[int], None]


def _p(value: str) -> str:
    return quote(value, safe="")


class Client:
    """A Lacus (or Rucio-dialect) server, as one account.

    Without arguments the client reads ``LACUS_URL``, ``LACUS_ACCOUNT``, ``LACUS_PASSWORD`` or
    ``LACUS_TOKEN``, else the file written by ``lacus login``. Tokens are refreshed transparently.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        account: str | None = None,
        password: str | None = None,
        token: str | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.config: ClientConfig = load_config(url, account, password, token)
        self.session = Session(self.config, http=http)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- server and account --------------------------------------------------------------------
    def ping(self) -> dict[str, Any]:
        response = self.session.http.get("/ping")
        raise_for_error(response)
        result: dict[str, Any] = response.json()
        return result

    def whoami(self) -> dict[str, Any]:
        result: dict[str, Any] = self.session.json("GET", "/accounts/whoami")
        return result

    def token(self) -> str:
        return self.session.token

    def add_account(
        self,
        account: str,
        *,
        password: str | None = None,
        email: str | None = None,
        admin: bool = False,
    ) -> None:
        body = {"type": "user", "email": email, "admin": admin, "password": password}
        self.session.request("POST", f"/accounts/{_p(validate_account(account))}", json=body)

    def add_oidc_identity(self, account: str, subject: str, issuer: str) -> None:
        """Let JWTs of ``issuer`` whose ``sub`` is ``subject`` authenticate as ``account``."""
        body = {"identity": subject, "issuer": issuer, "type": "oidc"}
        self.session.request(
            "POST", f"/accounts/{_p(validate_account(account))}/identities", json=body
        )

    # -- scopes ----------------------------------------------------------------------------------
    def add_scope(self, scope: str, *, account: str | None = None) -> None:
        owner = account or self.whoami()["account"]
        validate_scope(scope)
        self.session.request("POST", f"/accounts/{_p(owner)}/scopes/{_p(scope)}")

    def list_scopes(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.session.json(
            "GET", "/scopes/", params={"detail": "true"}
        )
        return result

    # -- RSEs ------------------------------------------------------------------------------------
    def add_rse(
        self,
        rse: str,
        *,
        prefix: str | None = None,
        scheme: str = "file",
        hostname: str = "",
        port: int = 0,
        rse_type: str = "disk",
        deterministic: bool = True,
        total_bytes: int | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        validate_rse(rse)
        body = {
            "rse_type": rse_type,
            "deterministic": deterministic,
            "total_bytes": total_bytes,
            "attributes": dict(attributes or {}),
        }
        self.session.request("POST", f"/rses/{_p(rse)}", json=body)
        if prefix is not None:
            self.add_protocol(rse, scheme=scheme, prefix=prefix, hostname=hostname, port=port)

    def add_protocol(
        self, rse: str, *, scheme: str, prefix: str, hostname: str = "", port: int = 0
    ) -> None:
        body = {"hostname": hostname, "port": port, "prefix": prefix, "impl": scheme}
        self.session.request("POST", f"/rses/{_p(rse)}/protocols/{_p(scheme)}", json=body)

    def list_rses(self) -> list[dict[str, Any]]:
        return list(self.session.ndjson("GET", "/rses/"))

    def get_rse(self, rse: str) -> dict[str, Any]:
        result: dict[str, Any] = self.session.json("GET", f"/rses/{_p(rse)}")
        return result

    def set_rse_attribute(self, rse: str, key: str, value: str) -> None:
        self.session.request("POST", f"/rses/{_p(rse)}/attr/{_p(key)}", json={"value": value})

    def delete_rse_attribute(self, rse: str, key: str) -> None:
        self.session.request("DELETE", f"/rses/{_p(rse)}/attr/{_p(key)}")

    def update_rse(self, rse: str, **values: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.session.json("PUT", f"/rses/{_p(rse)}", json=values)
        return result

    # -- DIDs ------------------------------------------------------------------------------------
    def add_dataset(self, did: str, *, meta: Mapping[str, MetaValue] | None = None) -> None:
        self._add_collection(did, "dataset", meta)

    def add_container(self, did: str, *, meta: Mapping[str, MetaValue] | None = None) -> None:
        self._add_collection(did, "container", meta)

    def _add_collection(
        self, did: str, did_type: str, meta: Mapping[str, MetaValue] | None
    ) -> None:
        scope, name = parse_did(did)
        self.session.request(
            "POST",
            f"/dids/{_p(scope)}/{_p(name)}",
            json={"type": did_type, "meta": dict(meta or {})},
        )

    def get_did(self, did: str) -> dict[str, Any]:
        scope, name = parse_did(did)
        result: dict[str, Any] = self.session.json("GET", f"/dids/{_p(scope)}/{_p(name)}")
        return result

    def list_dids(
        self,
        pattern: str,
        *,
        filters: Sequence[str] = (),
        did_type: str | None = None,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """DIDs matching ``scope:name-pattern`` (``*`` wildcards) and metadata filters."""
        if ":" not in pattern:
            raise InvalidInput("a pattern is 'scope:name', e.g. 'virgo:chunk_*'")
        scope, name = pattern.split(":", 1)
        validate_scope(scope)
        params: list[tuple[str, str]] = [("name", name or "*"), ("long", "true")]
        params += [("filter", flt) for flt in filters]
        if did_type:
            params.append(("type", did_type))
        if limit:
            params.append(("limit", str(limit)))
        return self.session.ndjson("GET", f"/dids/{_p(scope)}/dids/search", params=params)

    def list_content(self, did: str) -> list[dict[str, Any]]:
        scope, name = parse_did(did)
        return list(self.session.ndjson("GET", f"/dids/{_p(scope)}/{_p(name)}/dids"))

    def list_files(self, did: str) -> Iterator[dict[str, Any]]:
        scope, name = parse_did(did)
        return self.session.ndjson("GET", f"/dids/{_p(scope)}/{_p(name)}/files")

    def attach(self, did: str, children: Sequence[str], *, ignore_duplicates: bool = False) -> None:
        scope, name = parse_did(did)
        refs = [dict(zip(("scope", "name"), parse_did(child), strict=True)) for child in children]
        self.session.request(
            "POST",
            f"/dids/{_p(scope)}/{_p(name)}/dids",
            json={"dids": refs, "ignore_duplicate": ignore_duplicates},
        )

    def detach(self, did: str, children: Sequence[str]) -> None:
        scope, name = parse_did(did)
        refs = [dict(zip(("scope", "name"), parse_did(child), strict=True)) for child in children]
        self.session.request("DELETE", f"/dids/{_p(scope)}/{_p(name)}/dids", json={"dids": refs})

    def close_dataset(self, did: str) -> None:
        scope, name = parse_did(did)
        self.session.request("PUT", f"/dids/{_p(scope)}/{_p(name)}/status", json={"open": False})

    def get_metadata(self, did: str) -> dict[str, MetaValue]:
        scope, name = parse_did(did)
        result: dict[str, MetaValue] = self.session.json(
            "GET", f"/dids/{_p(scope)}/{_p(name)}/meta", params={"plugin": "JSON"}
        )
        return result

    def set_metadata(self, did: str, meta: Mapping[str, MetaValue]) -> None:
        scope, name = parse_did(did)
        self.session.request(
            "POST", f"/dids/{_p(scope)}/{_p(name)}/meta", json={"meta": dict(meta)}
        )

    def set_embargo(
        self, target: str, *, embargoed: bool = True, release_at: datetime | None = None
    ) -> None:
        """Hide a DID (``scope:name``, with everything below it) or a whole scope from other
        accounts, until ``release_at`` (forever when None); ``embargoed=False`` lifts it."""
        body = {
            "embargoed": embargoed,
            "release_at": release_at.isoformat() if release_at else None,
        }
        if ":" in target:
            scope, name = parse_did(target)
            self.session.request("PUT", f"/dids/{_p(scope)}/{_p(name)}/embargo", json=body)
        else:
            self.session.request("PUT", f"/scopes/{_p(validate_scope(target))}/embargo", json=body)

    # -- replicas --------------------------------------------------------------------------------
    def add_replicas(
        self, rse: str, files: Sequence[Mapping[str, Any]], *, dataset: str | None = None
    ) -> None:
        """Register files already on ``rse`` (one transaction; the dataset is created if needed)."""
        body: dict[str, Any] = {"rse": rse, "files": [dict(f) for f in files]}
        if dataset is not None:
            scope, name = parse_did(dataset)
            body["dataset"] = {"scope": scope, "name": name}
        self.session.request("POST", "/replicas", json=body)

    def list_replicas(
        self, dids: Sequence[str], *, rse: str | None = None, all_states: bool = False
    ) -> Iterator[dict[str, Any]]:
        """The replicas of every file at or below ``dids``: per file its size, checksums and
        ``rses`` = {RSE: {state, path, pfn, created_at, accessed_at}}."""
        refs = [dict(zip(("scope", "name"), parse_did(did), strict=True)) for did in dids]
        body = {"dids": refs, "rse": rse, "all_states": all_states}
        for line in self.session.ndjson("POST", "/replicas/list", json=body):
            yield {
                "scope": line["scope"],
                "name": line["name"],
                "bytes": line["bytes"],
                "adler32": line["adler32"],
                "md5": line["md5"],
                "rses": line["replicas"],
            }

    # -- data ------------------------------------------------------------------------------------
    def upload(
        self,
        paths: Sequence[str | Path],
        *,
        rse: str,
        scope: str,
        dataset: str | None = None,
        md5: bool = True,
        meta: Mapping[str, MetaValue] | None = None,
        workers: int = 4,
        progress: Progress | None = None,
    ) -> list[dict[str, Any]]:
        """Upload files and directory trees; see :mod:`lacus.client.upload`."""
        from lacus.client.upload import Uploader

        uploader = Uploader(self, rse=rse, scope=scope, md5=md5, workers=workers, progress=progress)
        return uploader.upload([Path(p) for p in paths], dataset=dataset, meta=meta)

    def download(
        self,
        dids: Sequence[str],
        directory: str | Path,
        *,
        structure: bool = False,
        rse: str | None = None,
        workers: int = 4,
        progress: Progress | None = None,
    ) -> list[dict[str, Any]]:
        """Download files, datasets, containers or wildcards; see :mod:`lacus.client.download`."""
        from lacus.client.download import Downloader

        downloader = Downloader(self, rse=rse, workers=workers, progress=progress)
        return downloader.download(list(dids), Path(directory), structure=structure)
