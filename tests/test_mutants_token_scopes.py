"""What ``service/token_scopes.py`` promises beyond test_oidc_wlcg.py, found by mutation testing
(scripts/mutation.sh): how a token's ``storage.*`` scopes are read (a path is everything after
the first colon; ``.`` parts make the token invalid; deeper paths keep their slashes), and what
the refusals say (every scope the token carries, quoted inputs cut to a bounded length)."""

from __future__ import annotations

import pytest

from lacus.errors import AccessDenied, Unauthenticated
from lacus.service import Lake, Principal, scopes
from lacus.service import dids as service_dids
from lacus.service.token_scopes import (
    StorageOperation,
    parse_storage_scopes,
    require_storage_scope,
)
from lacus.types import DIDType

MUTATED = "src/lacus/service/token_scopes.py"
"""scripts/mutation.sh runs this file with the module's other tests."""

ROOT = Principal("root", admin=True)


def test_a_path_is_everything_after_the_first_colon() -> None:
    assert parse_storage_scopes("storage.read:/runs:2024") == frozenset({("read", "/runs:2024")})


def test_deeper_paths_keep_their_slashes() -> None:
    assert parse_storage_scopes("storage.read:/virgo/raw/2024/") == frozenset(
        {("read", "/virgo/raw/2024")}
    )


@pytest.mark.parametrize("path", ["/virgo/.", "/./virgo", "/virgo/./raw"])
def test_a_dot_part_makes_the_token_invalid(path: str) -> None:
    with pytest.raises(Unauthenticated, match="absolute, normalised path"):
        parse_storage_scopes(f"openid storage.read:{path}")


def test_an_invalid_scope_is_quoted_in_80_characters_at_most() -> None:
    long_path = "storage.read:virgo" + "x" * 200
    with pytest.raises(Unauthenticated) as caught:
        parse_storage_scopes(long_path)
    assert str(caught.value) == (
        f"the JWT's scope {long_path[:80]!r} does not name an absolute, normalised path "
        "(like /virgo)"
    )
    no_path = "storage." + "r" * 200
    with pytest.raises(Unauthenticated) as caught:
        parse_storage_scopes(no_path)
    assert str(caught.value) == (
        f"the JWT's scope {no_path[:80]!r} has no path: WLCG storage scopes name one "
        f"(storage.{'r' * 20}:/ for everything)"
    )


def test_a_refusal_lists_every_scope_the_token_carries() -> None:
    token = Principal("alice", storage_scopes=frozenset({("read", "/virgo"), ("stage", "/virgo")}))
    with pytest.raises(AccessDenied) as caught:
        require_storage_scope(token, StorageOperation.MODIFY, "virgo")
    assert str(caught.value) == (
        "this token of account 'alice' may not change or delete in scope 'virgo': it carries "
        "storage.read:/virgo storage.stage:/virgo, and that needs storage.modify:/virgo"
    )


def test_a_refusal_cuts_what_the_token_carries_to_300_characters() -> None:
    many = frozenset(("read", f"/scope{index:03d}") for index in range(100))
    with pytest.raises(AccessDenied) as caught:
        require_storage_scope(Principal("alice", storage_scopes=many), StorageOperation.READ, "x")
    carried = " ".join(sorted(f"storage.read:{path}" for _, path in many))[:300]
    assert f"it carries {carried}, and that needs storage.read:/x" in str(caught.value)


def test_metadata_of_dids_named_in_a_tuple(lake: Lake) -> None:
    """``get_metadata_many`` takes any sequence of keys (a full-rights token filters none)."""
    scopes.add_scope(lake, ROOT, "virgo", account="root")
    service_dids.add_collection(lake, ROOT, "virgo", "ds", DIDType.DATASET)
    found = service_dids.get_metadata_many(lake, ROOT, (("virgo", "ds"),), columns=True, free=True)
    assert [(info["name"], meta) for info, meta in found] == [("ds", {})]
