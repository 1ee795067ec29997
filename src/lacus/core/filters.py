"""DID search filters: ``key=value``, ``key!=value``, ``key>n``, ``key>=n``, ``key<n``, ``key<=n``.

Keys ``name`` (with ``*`` wildcards), ``type``, ``bytes`` and ``length`` filter DID columns; every
other key filters free-form metadata. Parsing is pure; ``to_condition`` turns a filter into SQL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, or_, select, true

from lacus.db.tables import did_meta, dids
from lacus.errors import InvalidMetadataFilter
from lacus.types import DIDType

_FILTER_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.\-]{0,99})\s*(<=|>=|!=|=|<|>)\s*(.*?)\s*")
_TYPE_VALUES = {*(t.value for t in DIDType), "collection", "all"}
MAX_FILTERS = 100
"""Filters AND-ed in one search (or one group of Rucio's filters): each is a subquery."""
_NUMERIC_COLUMNS = {"bytes": dids.c.bytes, "length": dids.c.length}


@dataclass(frozen=True, slots=True)
class Filter:
    key: str
    op: str
    value: str


def parse_filter(text: str) -> Filter:
    if "\x00" in text or _has_lone_surrogate(text):
        raise InvalidMetadataFilter(
            f"invalid filter {text[:80]!r}: NUL characters and lone surrogates cannot match"
        )
    match = _FILTER_RE.fullmatch(text)
    if match is None:
        raise InvalidMetadataFilter(
            f"invalid filter {text[:80]!r}: expected key=value, key!=value, key>n, key>=n, "
            "key<n or key<=n"
        )
    key, op, value = match.groups()
    if op in ("<", ">", "<=", ">=") and _number(value) is None:
        raise InvalidMetadataFilter(f"invalid filter {text[:80]!r}: {op} needs a number")
    if key == "type":
        value = value.lower()
        if op not in ("=", "!=") or value not in _TYPE_VALUES:
            raise InvalidMetadataFilter(
                "the type filter takes =file, =dataset, =container, =collection or =all"
            )
    if key == "name" and op not in ("=", "!="):
        raise InvalidMetadataFilter("the name filter takes = or != with a pattern")
    return Filter(key, op, value)


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def parse_filters(texts: list[str]) -> list[Filter]:
    if len(texts) > MAX_FILTERS:
        raise InvalidMetadataFilter(f"at most {MAX_FILTERS} filters are AND-ed in one search")
    return [parse_filter(text) for text in texts]


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number else None  # NaN compares with nothing


def like_pattern(pattern: str) -> str:
    """Turn a ``*`` wildcard pattern into a LIKE pattern (escape character ``\\``)."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def name_condition(pattern: str) -> ColumnElement[bool]:
    if "*" in pattern:
        return dids.c.name.like(like_pattern(pattern), escape="\\")
    return dids.c.name == pattern


def _compare(column: ColumnElement[object], op: str, value: object) -> ColumnElement[bool]:
    match op:
        case "=":
            return column == value
        case "!=":
            return column != value
        case "<":
            return column < value
        case "<=":
            return column <= value
        case ">":
            return column > value
        case _:
            return column >= value


def to_condition(flt: Filter) -> ColumnElement[bool]:
    condition: ColumnElement[bool]
    if flt.key == "name":
        condition = name_condition(flt.value)
        return ~condition if flt.op == "!=" else condition
    if flt.key == "type":
        if flt.value == "all":
            condition = true()
        elif flt.value == "collection":
            condition = dids.c.did_type != DIDType.FILE.value
        else:
            condition = dids.c.did_type == flt.value
        return ~condition if flt.op == "!=" else condition
    number = _number(flt.value)
    if flt.key in _NUMERIC_COLUMNS:
        if number is None:
            raise InvalidMetadataFilter(f"the {flt.key} filter needs a number")
        return _compare(_NUMERIC_COLUMNS[flt.key], flt.op, number)
    meta = did_meta.alias()
    joined = and_(meta.c.scope == dids.c.scope, meta.c.name == dids.c.name, meta.c.key == flt.key)
    if flt.op in ("=", "!="):
        equal = meta.c.value_text == flt.value
        if number is not None:
            equal = or_(equal, meta.c.value_num == number)
        found = exists(select(meta.c.key).where(joined, equal))
        return found if flt.op == "=" else ~found
    return exists(select(meta.c.key).where(joined, _compare(meta.c.value_num, flt.op, number)))


def any_of(groups: Sequence[Sequence[Filter]]) -> ColumnElement[bool]:
    """OR of groups, each the AND of its filters (Rucio's list-of-dicts filters)."""
    return or_(*(and_(true(), *(to_condition(flt) for flt in group)) for group in groups))
