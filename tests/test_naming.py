"""Names of scopes and DIDs, Rucio's deterministic ``hash`` path layout, and PFNs.

The expected values are computed here from Rucio's published algorithm, not copied from Lacus.
"""

from __future__ import annotations

import hashlib
import string

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from lacus.errors import InvalidName
from lacus.naming import deterministic_path, make_pfn, parse_did, validate_name, validate_scope

SCOPE_FIRST = string.ascii_letters + string.digits
SCOPE_REST = SCOPE_FIRST + "._-"
NAME_FIRST = string.ascii_letters + string.digits + "_"
NAME_REST = NAME_FIRST + ".-+"


def _no_double_dot(value: str) -> bool:
    return ".." not in value


def _scope_tail(max_size: int) -> st.SearchStrategy[str]:
    return st.text(SCOPE_REST, max_size=max_size)


valid_scopes = st.one_of(
    st.builds(lambda a, b: a + b, st.sampled_from(SCOPE_FIRST), _scope_tail(24)),
    # Scopes of users and groups, and scopes that merely start like them.
    st.builds(
        lambda prefix, tail: prefix + tail,
        st.sampled_from(["user.", "group.", "user", "group", "users.", "groupie."]),
        _scope_tail(18),
    ),
).filter(lambda scope: _no_double_dot(scope) and len(scope) <= 25)

valid_names = st.builds(
    lambda a, b: a + b, st.sampled_from(NAME_FIRST), st.text(NAME_REST, max_size=249)
).filter(_no_double_dot)


def rucio_hash_path(scope: str, name: str) -> str:
    """Rucio's ``hash`` lfn2pfn algorithm (rucio.rse.protocols.protocol), written out again."""
    digest = hashlib.md5(f"{scope}:{name}".encode()).hexdigest()
    directory = scope.replace(".", "/") if scope[:4] == "user" or scope[:5] == "group" else scope
    return "/".join([directory, digest[:2], digest[2:4], name])


# -- deterministic paths -------------------------------------------------------------------------


@given(scope=valid_scopes, name=valid_names)
@example(scope="user.jdoe", name="file.root")
@example(scope="group.phys", name="data_01")
@example(scope="userdata.v2", name="x")
@example(scope="virgo", name="chunk.001")
def test_deterministic_path_is_rucio_hash_layout(scope: str, name: str) -> None:
    assert deterministic_path(scope, name) == rucio_hash_path(scope, name)


def test_deterministic_path_known_values() -> None:
    # md5("user.jdoe:file.root") and md5("virgo:chunk.001"), computed independently.
    user = hashlib.md5(b"user.jdoe:file.root").hexdigest()
    assert deterministic_path("user.jdoe", "file.root") == (
        f"user/jdoe/{user[:2]}/{user[2:4]}/file.root"
    )
    group = hashlib.md5(b"group.x:f").hexdigest()
    assert deterministic_path("group.x", "f") == f"group/x/{group[:2]}/{group[2:4]}/f"
    plain = hashlib.md5(b"virgo.o3:chunk.001").hexdigest()
    # Only user and group scopes become directories; other dotted scopes stay whole.
    assert deterministic_path("virgo.o3", "chunk.001") == (
        f"virgo.o3/{plain[:2]}/{plain[2:4]}/chunk.001"
    )


@given(scope=valid_scopes, name=valid_names)
def test_deterministic_path_ends_with_the_name_and_has_hex_directories(
    scope: str, name: str
) -> None:
    path = deterministic_path(scope, name)
    assert path.endswith("/" + name)
    first, second = path[: -len(name) - 1].split("/")[-2:]
    assert len(first) == len(second) == 2
    assert set(first + second) <= set(string.hexdigits.lower())


# -- valid names round trip ----------------------------------------------------------------------


@given(scope=valid_scopes, name=valid_names)
def test_valid_names_round_trip(scope: str, name: str) -> None:
    assert validate_scope(scope) == scope
    assert validate_name(name) == name
    assert parse_did(f"{scope}:{name}") == (scope, name)
    assert parse_did(name, default_scope=scope) == (scope, name)


@pytest.mark.parametrize(
    ("scope", "name"), [("a" * 25, "b" * 250), ("x", "_"), ("user.jdoe", "a+b-c.d_e")]
)
def test_names_at_the_limits_are_valid(scope: str, name: str) -> None:
    assert parse_did(f"{scope}:{name}") == (scope, name)


# -- invalid names -------------------------------------------------------------------------------

anything = st.text(max_size=30)


@st.composite
def with_bad_part(draw: st.DrawFn) -> str:
    """Arbitrary text that contains at least one forbidden feature."""
    bad = draw(st.sampled_from(["\x00", "/", ".."]))
    return draw(anything) + bad + draw(anything)


@given(value=with_bad_part())
@example(value="/abc")
@example(value="a..b")
@example(value="..")
@example(value="a\x00")
def test_forbidden_characters_raise_invalid_name(value: str) -> None:
    with pytest.raises(InvalidName, match=r"invalid scope") as scope_error:
        validate_scope(value)
    with pytest.raises(InvalidName, match=r"invalid name") as name_error:
        validate_name(value)
    assert scope_error.value.message
    assert name_error.value.message


@given(base=valid_names, position=st.integers(min_value=0, max_value=250))
def test_each_forbidden_feature_is_named_in_the_message(base: str, position: int) -> None:
    cut = min(position, len(base))
    nul = base[:cut] + "\x00" + base[cut:]
    with pytest.raises(InvalidName, match="NUL"):
        validate_name(nul)
    if cut > 0:
        slash = base[:cut] + "/" + base[cut:]
        with pytest.raises(InvalidName, match="must not contain '/'"):
            validate_name(slash)
    with pytest.raises(InvalidName, match="must not start with '/'"):
        validate_name("/" + base)
    dots = base[:cut] + ".." + base[cut:]
    with pytest.raises(InvalidName, match=r"'\.\.'"):
        validate_name(dots)


@pytest.mark.parametrize("validate", [validate_scope, validate_name])
def test_empty_is_invalid(validate) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidName, match="must not be empty"):
        validate("")


@given(length=st.integers(min_value=26, max_value=400))
def test_too_long_scopes_are_invalid(length: int) -> None:
    with pytest.raises(InvalidName, match=rf"{length} characters, at most 25"):
        validate_scope("s" * length)


@given(length=st.integers(min_value=251, max_value=2000))
def test_too_long_names_are_invalid(length: int) -> None:
    with pytest.raises(InvalidName, match=rf"{length} characters, at most 250"):
        validate_name("n" * length)


@given(value=st.text(min_size=1, max_size=40))
def test_validation_either_returns_the_value_or_raises_invalid_name(value: str) -> None:
    # Whatever the input, a caller sees the value back or an InvalidName, nothing else.
    for validate in (validate_scope, validate_name):
        try:
            returned = validate(value)
        except InvalidName as exc:
            message = exc.message
            assert message
        else:
            assert returned == value


@given(value=st.text(alphabet=string.printable, min_size=1, max_size=20))
def test_scopes_with_other_characters_are_invalid(value: str) -> None:
    assume(set(value) - set(SCOPE_REST))
    with pytest.raises(InvalidName, match="invalid scope"):
        validate_scope(value)


# -- parse_did -----------------------------------------------------------------------------------


def test_parse_did_needs_a_scope() -> None:
    with pytest.raises(InvalidName, match="expected 'scope:name'"):
        parse_did("just-a-name")


def test_parse_did_splits_at_the_first_colon_and_validates_both_parts() -> None:
    with pytest.raises(InvalidName, match="invalid name"):
        parse_did("scope:name:more")
    with pytest.raises(InvalidName, match="invalid scope"):
        parse_did(":name")
    with pytest.raises(InvalidName, match="invalid name"):
        parse_did("scope:")
    with pytest.raises(InvalidName, match="invalid name"):
        parse_did("scope:../etc/passwd")


def test_parse_did_prefers_an_explicit_scope_over_the_default() -> None:
    assert parse_did("mine:file", default_scope="other") == ("mine", "file")


# -- PFNs ----------------------------------------------------------------------------------------

segments = st.lists(st.text(string.ascii_letters + string.digits + "_-.", min_size=1, max_size=8))
prefixes = st.builds(
    lambda lead, parts, trail: ("/" if lead else "") + "/".join(parts) + ("/" if trail else ""),
    st.booleans(),
    segments.filter(lambda parts: all(part not in (".", "..") for part in parts)),
    st.booleans(),
)
hosts = st.from_regex(r"[a-z][a-z0-9\-]{0,10}(\.[a-z][a-z0-9\-]{0,10}){0,3}", fullmatch=True)


def expected_pfn(scheme: str, host: str, port: int, prefix: str, path: str) -> str:
    parts = [part for part in prefix.split("/") if part]
    directory = "/" + "/".join(parts) if parts else ""
    if scheme in ("file", "posix"):
        return f"file://{directory}/{path}"
    authority = f"{host}:{port}" if port else host
    return f"{scheme}://{authority}{directory}/{path}"


@given(
    scheme=st.sampled_from(["root", "davs", "https", "s3"]),
    host=hosts,
    port=st.integers(min_value=0, max_value=65535),
    prefix=prefixes,
    scope=valid_scopes,
    name=valid_names,
)
@example(scheme="root", host="eos.cern.ch", port=1094, prefix="/eos/lake/", scope="v", name="f")
@example(
    scheme="davs", host="dcache.example.org", port=2880, prefix="pnfs/data", scope="v", name="f"
)
@example(scheme="https", host="web.example.org", port=0, prefix="", scope="v", name="f")
def test_make_pfn_for_remote_protocols(
    scheme: str, host: str, port: int, prefix: str, scope: str, name: str
) -> None:
    path = deterministic_path(scope, name)
    pfn = make_pfn(scheme, host, port, prefix, path)
    assert pfn == expected_pfn(scheme, host, port, prefix, path)
    assert pfn.endswith("/" + path)
    assert "//" not in pfn[len(scheme) + 3 : -len(path)]


@given(prefix=prefixes, scope=valid_scopes, name=valid_names)
@example(prefix="/data/rses/ALPHA_DISK", scope="user.jdoe", name="f")
@example(prefix="/", scope="v", name="f")
def test_make_pfn_for_local_files(prefix: str, scope: str, name: str) -> None:
    path = deterministic_path(scope, name)
    for scheme in ("file", "posix"):
        pfn = make_pfn(scheme, "", 0, prefix, path)
        assert pfn == expected_pfn(scheme, "", 0, prefix, path)
        assert pfn.startswith("file:///")


@settings(max_examples=25)
@given(scope=valid_scopes, name=valid_names)
def test_pfn_of_a_local_rse_points_into_its_directory(scope: str, name: str) -> None:
    pfn = make_pfn("file", "", 0, "/srv/lake/rses/ALPHA_DISK/", deterministic_path(scope, name))
    digest = hashlib.md5(f"{scope}:{name}".encode()).hexdigest()
    assert pfn.startswith("file:///srv/lake/rses/ALPHA_DISK/")
    assert pfn.endswith(f"/{digest[:2]}/{digest[2:4]}/{name}")
