"""Links between RSEs (distances): the table the conveyor reads (``load_links``), and setting,
showing and removing links through the service, REST (Rucio's paths), the client and the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from lacus.client import Client
from lacus.core import rses
from lacus.core.distances import DEFAULT_DISTANCE, load_links
from lacus.errors import AccessDenied, AlreadyExists, InvalidInput, NotFound, RSENotFound
from lacus.service import distances, permissions
from lacus.service.lake import Lake, Principal
from tests.conftest import CLIResult, RunningServer
from tests.rule_helpers import ROOT

Run = Callable[..., CLIResult]


def ids(lake: Lake) -> dict[str, int]:
    with lake.read() as conn:
        return {info["rse"]: info["id"] for info in rses.list_rses(conn)}


def test_links_default_to_every_rse_until_a_source_names_its_destinations(lake: Lake) -> None:
    rse = ids(lake)
    alpha, beta, gamma = rse["ALPHA_DISK"], rse["BETA_DISK"], rse["GAMMA_TAPE"]
    with lake.read() as conn:
        links = load_links(conn)
    assert links.distance(alpha, beta) == DEFAULT_DISTANCE
    assert links.max_active(alpha, beta) is None

    distances.add_distance(lake, ROOT, "ALPHA_DISK", "BETA_DISK", 3, max_active=5)
    with lake.read() as conn:
        links = load_links(conn)
    assert (links.distance(alpha, beta), links.max_active(alpha, beta)) == (3, 5)
    assert links.distance(alpha, gamma) is None, "ALPHA has links now: GAMMA is not one of them"
    assert links.distance(beta, gamma) == DEFAULT_DISTANCE, "BETA has none: linked to all"
    assert links.distance(beta, alpha) == DEFAULT_DISTANCE

    distances.update_distance(lake, ROOT, "ALPHA_DISK", "BETA_DISK", distance=1)
    distances.add_distance(lake, ROOT, "BETA_DISK", "GAMMA_TAPE", 0, bidirectional=True)
    with lake.read() as conn:
        links = load_links(conn)
    assert (links.distance(alpha, beta), links.max_active(alpha, beta)) == (1, 5), "kept"
    assert links.distance(beta, gamma) == links.distance(gamma, beta) == 0
    assert links.distance(beta, alpha) is None

    distances.update_distance(lake, ROOT, "ALPHA_DISK", "BETA_DISK", max_active=None)
    distances.delete_distance(lake, ROOT, "BETA_DISK", "GAMMA_TAPE", bidirectional=True)
    with lake.read() as conn:
        links = load_links(conn)
    assert (links.distance(alpha, beta), links.max_active(alpha, beta)) == (1, None)
    assert links.distance(beta, gamma) == DEFAULT_DISTANCE


def test_bad_links_are_refused_and_only_admins_change_them(lake: Lake) -> None:
    with pytest.raises(InvalidInput, match="two different RSEs"):
        distances.add_distance(lake, ROOT, "ALPHA_DISK", "ALPHA_DISK", 1)
    with pytest.raises(InvalidInput, match="distance"):
        distances.add_distance(lake, ROOT, "ALPHA_DISK", "BETA_DISK", -1)
    with pytest.raises(InvalidInput, match="max_active"):
        distances.add_distance(lake, ROOT, "ALPHA_DISK", "BETA_DISK", 1, max_active=0)
    with pytest.raises(RSENotFound):
        distances.add_distance(lake, ROOT, "ALPHA_DISK", "NOWHERE", 1)
    with pytest.raises(NotFound, match="not linked"):
        distances.update_distance(lake, ROOT, "ALPHA_DISK", "BETA_DISK", distance=2)
    with pytest.raises(NotFound, match="not linked"):
        distances.delete_distance(lake, ROOT, "ALPHA_DISK", "BETA_DISK")
    distances.add_distance(lake, ROOT, "ALPHA_DISK", "BETA_DISK", 1)
    with pytest.raises(AlreadyExists):
        distances.add_distance(lake, ROOT, "ALPHA_DISK", "BETA_DISK", 2)
    with pytest.raises(AlreadyExists):  # both directions or neither
        distances.add_distance(lake, ROOT, "BETA_DISK", "ALPHA_DISK", 2, bidirectional=True)
    assert len(distances.list_distances(lake, ROOT)) == 1
    user = Principal("jdoe")
    for operation in ("POST /rses/{src}/distances/{dest}", "DELETE /rses/{src}/distances/{dest}"):
        with pytest.raises(AccessDenied, match="admins only"):  # the server's gate
            permissions.require(user, operation)
    assert distances.list_distances(lake, user)[0]["distance"] == 1


def test_rest_in_rucio_dialect(client: Client, server: RunningServer) -> None:
    headers = {"X-Rucio-Auth-Token": client.token()}
    url = f"{server.url}/rses/ALPHA_DISK/distances/BETA_DISK"
    with httpx.Client(headers=headers) as http:
        assert http.get(url).json() == []
        assert http.post(url, json={"distance": 4}).status_code == 201
        duplicate = http.post(url, json={"distance": 4})
        assert (duplicate.status_code, duplicate.headers["ExceptionClass"]) == (409, "Duplicate")
        assert http.put(url, json={"ranking": 2, "max_active": 7}).status_code == 200
        (link,) = http.get(url).json()
        assert (link["src_rse"], link["dest_rse"]) == ("ALPHA_DISK", "BETA_DISK")
        assert link["src_rse_id"] == str(client.get_rse("ALPHA_DISK")["id"])
        assert (link["distance"], link["ranking"], link["max_active"]) == (2, 2, 7)
        missing = http.get(f"{server.url}/rses/NOWHERE/distances/BETA_DISK")
        assert (missing.status_code, missing.headers["ExceptionClass"]) == (404, "RSENotFound")
        assert http.delete(url, params={"bidirectional": "False"}).status_code == 200
        assert http.get(url).json() == []
        assert http.delete(url).status_code == 404


def test_client_and_cli(client: Client, cli: Run) -> None:
    client.set_distance("ALPHA_DISK", "BETA_DISK", 5, max_active=2)
    client.set_distance("ALPHA_DISK", "BETA_DISK", 6)  # set: exactly this, no limit now
    assert client.get_distance("ALPHA_DISK", "BETA_DISK") is not None
    assert client.get_distance("BETA_DISK", "ALPHA_DISK") is None
    with pytest.raises(RSENotFound):
        client.set_distance("ALPHA_DISK", "NOWHERE", 1)

    result = cli("rse", "distance", "set", "GAMMA_TAPE", "ALPHA_DISK", "1", "--max-active", "3")
    assert result.exit_code == 0, result.stderr
    assert "GAMMA_TAPE -> ALPHA_DISK: distance 1, at most 3 in flight" in result.stdout
    listed = json.loads(cli("rse", "distance", "list", "--json").stdout)
    assert [(x["src_rse"], x["dest_rse"], x["distance"], x["max_active"]) for x in listed] == [
        ("ALPHA_DISK", "BETA_DISK", 6, None),
        ("GAMMA_TAPE", "ALPHA_DISK", 1, 3),
    ]
    table = cli("rse", "distance", "list", "GAMMA_TAPE").stdout
    assert "GAMMA_TAPE" in table
    assert "BETA_DISK" not in table
    assert cli("rse", "distance", "delete", "GAMMA_TAPE", "ALPHA_DISK").exit_code == 0
    again = cli("rse", "distance", "delete", "GAMMA_TAPE", "ALPHA_DISK")
    assert again.exit_code == 1
    assert again.stderr.startswith("error: ")
    assert "not linked" in again.stderr
    bad = cli("rse", "distance", "set", "ALPHA_DISK", "ALPHA_DISK", "1")
    assert bad.exit_code == 1
    assert "two different RSEs" in bad.stderr
    assert [x["dest_rse"] for x in client.list_distances()] == ["BETA_DISK"]
