"""What ``core/visibility.py`` promises beyond test_embargo*.py, found by mutating its cached
conditions by hand (mutmut skips decorated functions; see docs/testing.md): the account a DID
belongs to sees it even in an embargoed scope it does not own."""

from __future__ import annotations

import pytest

from lacus.core import dids, visibility
from lacus.errors import DIDNotFound
from lacus.service import Lake, Principal, scopes
from lacus.service import accounts as service_accounts
from lacus.service import dids as service_dids
from lacus.types import DIDType

MUTATED = "src/lacus/core/visibility.py"
"""scripts/mutation.sh runs this file with the module's other tests."""

ROOT = Principal("root", admin=True)


@pytest.fixture(autouse=True)
def _conditions_built_again() -> None:
    visibility._visible_dids.cache_clear()
    visibility._visible_scopes.cache_clear()


def test_a_did_s_own_account_sees_it_whatever_hides_it(lake: Lake) -> None:
    """bob's and carol's DIDs in alice's scopes (as an admin may make them): in an embargoed
    scope, and embargoed themselves in a public one, bob sees his own and not carol's."""
    for account in ("alice", "bob", "carol"):
        service_accounts.add_account(lake, ROOT, account)
    for scope in ("alice", "north"):
        scopes.add_scope(lake, ROOT, scope, account="alice")
        with lake.write() as conn:
            for owner in ("bob", "carol"):
                dids.add_collection(conn, scope, f"{owner}s", DIDType.DATASET, account=owner)
    alice, bob = Principal("alice"), Principal("bob")
    scopes.set_embargo(lake, alice, "alice", embargoed=True, release_at=None)
    for owner in ("bob", "carol"):
        service_dids.set_embargo(lake, alice, "north", f"{owner}s", embargoed=True, release_at=None)

    for scope in ("alice", "north"):
        assert service_dids.get_did(lake, bob, scope, "bobs")["account"] == "bob"
        with pytest.raises(DIDNotFound):
            service_dids.get_did(lake, bob, scope, "carols")
    assert {d["name"] for d in service_dids.search_dids(lake, bob, "north")} == {"bobs"}
