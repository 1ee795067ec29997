"""RSEs on network storage: protocols given as URLs with backend options, credentials kept on
the server, and what a client does with what the server shows."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from lacus.client import Client
from lacus.client._storage import backend_for
from lacus.db.tables import rse_protocols
from lacus.errors import ProtocolNotFound
from lacus.service.lake import Lake
from tests.test_cli import assert_one_error_line, ok, ok_json

pytestmark = pytest.mark.usefixtures("cli_reuses_token")


def test_an_rse_added_by_url_with_options(cli: Any, client: Client, lake: Lake) -> None:
    ok(
        cli(
            "rse", "add", "WEB_DISK", "--url", "davs://127.0.0.1:8443/data/web",
            "--option", "verify=/etc/lacus/ca.pem", "--option", "tpc=true",
            "--option", "timeout=30", "--option", "secret_key=s3cr3t",
        )
    )  # fmt: skip
    (proto,) = ok_json(cli("rse", "info", "WEB_DISK", "--json"))["protocols"]
    assert (proto["scheme"], proto["hostname"], proto["port"], proto["prefix"]) == (
        "davs",
        "127.0.0.1",
        8443,
        "/data/web",
    )
    assert proto["extended_attributes"] == {
        "verify": "/etc/lacus/ca.pem",
        "tpc": True,
        "timeout": 30,
        "secret_key": "***",  # never shown back
    }
    with lake.read() as conn:
        stored = conn.execute(select(rse_protocols.c.extended_attributes)).scalars().all()
    assert {"verify": "/etc/lacus/ca.pem", "tpc": True, "timeout": 30, "secret_key": "s3cr3t"} in (
        stored
    )
    text = ok(cli("rse", "info", "WEB_DISK")).stdout
    assert "davs://127.0.0.1:8443/data/web" in text
    assert "s3cr3t" not in text


def test_a_second_protocol_and_bad_urls(cli: Any, client: Client) -> None:
    ok(cli("rse", "add", "XRD_DISK", "--url", "root://127.0.0.1:1094//data/xrd"))
    ok(cli("rse", "add-protocol", "XRD_DISK", "https://127.0.0.1:1095/data/xrd"))
    schemes = {p["scheme"]: p for p in client.get_rse("XRD_DISK")["protocols"]}
    assert set(schemes) == {"root", "https"}
    assert schemes["root"]["prefix"] == "//data/xrd"
    assert_one_error_line(cli("rse", "add", "BAD_DISK", "--url", "not a url"), "storage URL")
    assert_one_error_line(cli("rse", "add", "BAD_DISK", "--url", "davs://h:99999/x"), "port")
    assert_one_error_line(
        cli("rse", "add", "BAD_DISK", "--url", "davs://h/x", "--prefix", "/y"), "not both"
    )
    assert_one_error_line(cli("rse", "add-protocol", "XRD_DISK", "root://h/x", "--option", "v"))


def test_the_client_leaves_redacted_credentials_to_its_own_environment() -> None:
    rse = {
        "rse": "S3_DISK",
        "protocols": [
            {
                "scheme": "file",
                "hostname": "",
                "port": 0,
                "prefix": "/tmp/nowhere",
                "extended_attributes": {"fsync": False, "secret_key": "***"},
            }
        ],
    }
    # The redacted option is dropped, the shared one reaches the backend (POSIX refuses any
    # option it does not know, so a leftover '***' would fail here).
    backend = backend_for(rse)
    assert "nowhere" in backend.url
    rse["protocols"][0]["extended_attributes"] = {"fsync": False, "colour": "blue"}
    with pytest.raises(ProtocolNotFound, match="colour"):
        backend_for(rse)
