"""DIDs: files, datasets and containers; their content (attach/detach), status and search."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    CTE,
    BigInteger,
    Connection,
    Select,
    String,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError

from lacus.core import embargo, events, queue
from lacus.core.clock import utcnow
from lacus.core.filters import Filter, any_of, name_condition, to_condition
from lacus.core.scopes import get_scope
from lacus.core.visibility import visible
from lacus.db.engine import insert_rows
from lacus.db.tables import contents, dids
from lacus.errors import (
    DIDAlreadyExists,
    DIDNotFound,
    InvalidInput,
    UnsupportedOperation,
)
from lacus.naming import validate_name, validate_scope
from lacus.types import MAX_INT64, DIDInfo, DIDType, Viewer

DIDKey = tuple[str, str]
BATCH = 500


def did_info(row: Any) -> DIDInfo:
    return DIDInfo(
        scope=row.scope,
        name=row.name,
        type=row.did_type,
        account=row.account,
        open=None if row.is_open is None else bool(row.is_open),
        bytes=row.bytes,
        length=row.length,
        adler32=row.adler32,
        md5=row.md5,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def chunks(items: Sequence[Any], size: int = BATCH) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def names_by_scope(keys: Iterable[DIDKey], size: int = BATCH) -> Iterator[tuple[str, list[str]]]:
    """``keys`` grouped by scope, at most ``size`` names a group, for ``scope = s AND name IN``.

    That condition is an index lookup on every database. PostgreSQL does not turn a row-value
    ``(scope, name) IN ((...), ...)`` of bound parameters into index lookups: it filters every
    row of the scope with the whole list (seconds per chunk once a scope holds 100k files).
    """
    groups: dict[str, list[str]] = {}
    for scope, name in keys:
        groups.setdefault(scope, []).append(name)
    for scope, names in groups.items():
        for start in range(0, len(names), size):
            yield scope, names[start : start + size]


def add_collection(
    conn: Connection, scope: str, name: str, did_type: DIDType, *, account: str
) -> None:
    """Create an empty, open dataset or an empty container."""
    validate_scope(scope)
    validate_name(name)
    if did_type is DIDType.FILE:
        raise InvalidInput("files are created by uploading or registering replicas")
    get_scope(conn, scope)
    now = utcnow()
    try:
        with conn.begin_nested():
            conn.execute(
                insert(dids).values(
                    scope=scope,
                    name=name,
                    did_type=did_type.value,
                    account=account,
                    is_open=True,
                    bytes=0,
                    length=0,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        raise DIDAlreadyExists(f"DID {scope}:{name} exists already") from None
    queue.collection_created(conn, scope, name, did_type.value)
    events.emit(
        conn,
        "did.created",
        {"did_type": did_type.value, "account": account},
        scope=scope,
        name=name,
    )


def find_did(
    conn: Connection, scope: str, name: str, *, viewer: Viewer | None = None
) -> DIDInfo | None:
    """The DID, or None when it does not exist or ``viewer`` may not see it (embargo)."""
    reader = None if viewer is None or viewer.admin else viewer.account
    row = conn.execute(_did_query(reader), {"did_scope": scope, "did_name": name}).first()
    return did_info(row) if row is not None else None


@lru_cache(maxsize=512)
def _did_query(account: str | None) -> Select[Any]:
    """``find_did``'s statement as ``account`` (None: everything) sees DIDs, built once: SQLAlchemy
    keeps the cache key of a statement it runs again, where it walked the whole visibility
    condition for every new one (2,000 reads on SQLite: 0.26 → 0.14 s CPU as root, 0.34 → 0.17 s
    as an account that is not an admin; benchmarks/permission_cost.py)."""
    viewer = None if account is None else Viewer(account)
    return select(dids).where(
        dids.c.scope == bindparam("did_scope"),
        dids.c.name == bindparam("did_name"),
        visible(viewer),
    )


def find_dids(
    conn: Connection, keys: Iterable[DIDKey], *, viewer: Viewer | None = None
) -> dict[DIDKey, DIDInfo]:
    """Those of ``keys`` that exist and ``viewer`` may see, by key (index lookups by scope)."""
    found: dict[DIDKey, DIDInfo] = {}
    for scope, names in names_by_scope(keys):
        for row in conn.execute(
            select(dids).where(dids.c.scope == scope, dids.c.name.in_(names), visible(viewer))
        ):
            found[(row.scope, row.name)] = did_info(row)
    return found


def get_did(conn: Connection, scope: str, name: str, *, viewer: Viewer | None = None) -> DIDInfo:
    """The DID; a container's bytes and length count the distinct files below it."""
    info = find_did(conn, scope, name, viewer=viewer)
    if info is None:
        raise DIDNotFound(f"DID {scope}:{name} does not exist")
    if info["type"] == DIDType.CONTAINER:
        info["length"], info["bytes"] = container_totals(conn, scope, name, viewer)
    return info


def container_totals(
    conn: Connection, scope: str, name: str, viewer: Viewer | None
) -> tuple[int, int]:
    tree = file_tree(scope, name)
    files = (
        select(tree.c.child_scope, tree.c.child_name)
        .where(tree.c.child_type == DIDType.FILE.value)
        .distinct()
        .subquery()
    )
    row = conn.execute(
        select(func.count(), func.coalesce(func.sum(dids.c.bytes), 0))
        .select_from(
            files.join(
                dids, and_(dids.c.scope == files.c.child_scope, dids.c.name == files.c.child_name)
            )
        )
        .where(visible(viewer))
    ).one()
    return int(row[0]), int(row[1])


def file_tree(scope: str, name: str) -> CTE:
    """Recursive CTE of every (parent, child) edge below ``scope:name``."""
    base = select(
        contents.c.scope,
        contents.c.name,
        contents.c.child_scope,
        contents.c.child_name,
        contents.c.child_type,
    ).where(contents.c.scope == scope, contents.c.name == name)
    tree = base.cte("tree", recursive=True)
    step = select(
        contents.c.scope,
        contents.c.name,
        contents.c.child_scope,
        contents.c.child_name,
        contents.c.child_type,
    ).join(
        tree,
        and_(
            contents.c.scope == tree.c.child_scope,
            contents.c.name == tree.c.child_name,
            tree.c.child_type != DIDType.FILE.value,
        ),
    )
    return tree.union(step)


def files_query(
    scope: str, name: str, did_type: str, *, viewer: Viewer | None = None
) -> Select[Any]:
    """Select the distinct file rows of ``dids`` at or below a DID (those ``viewer`` sees)."""
    if did_type == DIDType.FILE:
        return select(dids).where(dids.c.scope == scope, dids.c.name == name, visible(viewer))
    if did_type == DIDType.DATASET:  # a dataset holds only files: one join, no recursion
        return (
            select(dids)
            .join(
                contents,
                and_(contents.c.child_scope == dids.c.scope, contents.c.child_name == dids.c.name),
            )
            .where(contents.c.scope == scope, contents.c.name == name, visible(viewer))
        )
    tree = file_tree(scope, name)
    files = (
        select(tree.c.child_scope, tree.c.child_name)
        .where(tree.c.child_type == DIDType.FILE.value)
        .distinct()
        .subquery()
    )
    return (
        select(dids)
        .join(files, and_(dids.c.scope == files.c.child_scope, dids.c.name == files.c.child_name))
        .where(visible(viewer))
    )


def list_files(
    conn: Connection, scope: str, name: str, *, viewer: Viewer | None = None
) -> list[DIDInfo]:
    did = get_did_row_type(conn, scope, name, viewer=viewer)
    query = files_query(scope, name, did, viewer=viewer).order_by(dids.c.scope, dids.c.name)
    return [did_info(row) for row in conn.execute(query)]


def get_did_row_type(
    conn: Connection, scope: str, name: str, *, viewer: Viewer | None = None
) -> str:
    """The DID's type; DIDNotFound when it does not exist or ``viewer`` may not see it."""
    did_type = conn.execute(
        select(dids.c.did_type).where(dids.c.scope == scope, dids.c.name == name, visible(viewer))
    ).scalar_one_or_none()
    if did_type is None:
        raise DIDNotFound(f"DID {scope}:{name} does not exist")
    return str(did_type)


def list_content(
    conn: Connection, scope: str, name: str, *, viewer: Viewer | None = None
) -> list[DIDInfo]:
    """The DIDs attached directly to a dataset or container."""
    get_did_row_type(conn, scope, name, viewer=viewer)
    query = content_query(scope, name, viewer=viewer).order_by(dids.c.scope, dids.c.name)
    return [did_info(row) for row in conn.execute(query)]


def tree_below(
    conn: Connection,
    scope: str,
    name: str,
    *,
    recursive: bool,
    viewer: Viewer | None = None,
) -> list[dict[str, Any]]:
    """The DIDs below a collection (its content; with ``recursive`` everything below it), each
    with its parent and its level (1: attached to ``scope:name``), parents before children, in
    name order within a level — Rucio's ``scope_list``. A DID in two collections is listed
    under each."""
    get_did_row_type(conn, scope, name, viewer=viewer)
    if recursive:
        tree = file_tree(scope, name)
        edges = select(
            tree.c.scope, tree.c.name, tree.c.child_scope, tree.c.child_name, tree.c.child_type
        ).subquery()
    else:
        edges = (
            select(
                contents.c.scope,
                contents.c.name,
                contents.c.child_scope,
                contents.c.child_name,
                contents.c.child_type,
            )
            .where(contents.c.scope == scope, contents.c.name == name)
            .subquery()
        )
    rows = conn.execute(
        select(edges)
        .join(dids, and_(dids.c.scope == edges.c.child_scope, dids.c.name == edges.c.child_name))
        .where(visible(viewer))
        .order_by(edges.c.child_scope, edges.c.child_name)
    )
    below: dict[DIDKey, list[Any]] = {}
    for row in rows:
        below.setdefault((row.scope, row.name), []).append(row)
    found: list[dict[str, Any]] = []
    level, parents = 1, [(scope, name)]
    seen = {(scope, name)}
    while parents:
        following: list[DIDKey] = []
        for parent in parents:
            for row in below.get(parent, []):
                child = (row.child_scope, row.child_name)
                found.append(
                    {
                        "scope": child[0],
                        "name": child[1],
                        "type": str(row.child_type).upper(),
                        "parent": {"scope": parent[0], "name": parent[1]},
                        "level": level,
                    }
                )
                if child not in seen:
                    seen.add(child)
                    following.append(child)
        level, parents = level + 1, following
    return found


def content_query(scope: str, name: str, *, viewer: Viewer | None = None) -> Select[Any]:
    """Select the ``dids`` rows attached directly to ``scope:name`` that ``viewer`` sees."""
    return (
        select(dids)
        .join(
            contents,
            and_(contents.c.child_scope == dids.c.scope, contents.c.child_name == dids.c.name),
        )
        .where(contents.c.scope == scope, contents.c.name == name, visible(viewer))
    )


def list_parents(
    conn: Connection, scope: str, name: str, *, viewer: Viewer | None = None
) -> list[DIDKey]:
    rows = conn.execute(
        select(contents.c.scope, contents.c.name)
        .join(dids, and_(dids.c.scope == contents.c.scope, dids.c.name == contents.c.name))
        .where(contents.c.child_scope == scope, contents.c.child_name == name, visible(viewer))
    )
    return [(row.scope, row.name) for row in rows]


def search_dids(
    conn: Connection,
    scope: str,
    *,
    name: str = "*",
    filters: Sequence[Filter] = (),
    groups: Sequence[Sequence[Filter]] = (),
    did_type: DIDType | None = None,
    after: str | None = None,
    limit: int = 1000,
    viewer: Viewer | None = None,
) -> list[DIDInfo]:
    """One page of the DIDs of ``scope`` matching the pattern and filters, in name order.

    ``filters`` are AND-ed; ``groups`` (when given) must match at least one group.
    """
    query = select(dids).where(dids.c.scope == scope, name_condition(name), visible(viewer))
    if did_type is not None:
        query = query.where(dids.c.did_type == did_type.value)
    for flt in filters:
        query = query.where(to_condition(flt))
    if groups:
        query = query.where(any_of(groups))
    if after is not None:
        query = query.where(dids.c.name > after)
    query = query.order_by(dids.c.name).limit(limit)
    return [did_info(row) for row in conn.execute(query)]


def _existing(
    conn: Connection, keys: Sequence[DIDKey], viewer: Viewer | None = None
) -> dict[DIDKey, Any]:
    found: dict[DIDKey, Any] = {}
    for scope, names in names_by_scope(keys):
        rows = conn.execute(
            select(dids).where(dids.c.scope == scope, dids.c.name.in_(names), visible(viewer))
        )
        found.update({(row.scope, row.name): row for row in rows})
    return found


def attach(
    conn: Connection,
    scope: str,
    name: str,
    children: Sequence[DIDKey],
    *,
    ignore_duplicates: bool = False,
    viewer: Viewer | None = None,
) -> int:
    """Attach ``children`` to a dataset (files) or container (datasets, containers).

    Set-based: one lookup of the children, one insert, one update of the parent's totals.
    Returns how many were attached.
    """
    parent = conn.execute(
        select(dids).where(dids.c.scope == scope, dids.c.name == name).with_for_update()
    ).first()
    if parent is None:
        raise DIDNotFound(f"DID {scope}:{name} does not exist")
    if parent.did_type == DIDType.FILE:
        raise UnsupportedOperation(f"{scope}:{name} is a file: nothing can be attached to a file")
    if parent.did_type == DIDType.DATASET and not parent.is_open:
        raise UnsupportedOperation(f"dataset {scope}:{name} is closed: reopen it to attach files")
    unique = list(dict.fromkeys(children))
    found = _existing(conn, unique, viewer)
    for key in unique:
        row = found.get(key)
        if row is None:
            raise DIDNotFound(f"DID {key[0]}:{key[1]} does not exist")
        _check_child_type(parent.did_type, f"{scope}:{name}", row)
    already = _attached(conn, scope, name, unique)
    if already and not ignore_duplicates:
        first = sorted(already)[0]
        raise DIDAlreadyExists(f"{first[0]}:{first[1]} is attached to {scope}:{name} already")
    new = [key for key in unique if key not in already]
    if parent.did_type == DIDType.CONTAINER:
        _refuse_cycles(conn, (scope, name), new)
    if not new:
        return 0
    now = utcnow()
    conn.execute(
        insert(contents),
        [
            {
                "scope": scope,
                "name": name,
                "child_scope": key[0],
                "child_name": key[1],
                "child_type": found[key].did_type,
                "created_at": now,
            }
            for key in new
        ],
    )
    embargo.paths_changed(conn, (scope, name), names_by_scope(new))
    added_bytes = sum(found[key].bytes or 0 for key in new)
    _update_totals(conn, scope, name, parent.did_type, len(new), added_bytes, now)
    queue.content_changed(
        conn, scope, name, detached=False, children=[(*key, found[key].did_type) for key in new]
    )
    events.emit_many(
        conn,
        events.membership(
            "did.attached", (scope, name), [(*key, found[key].did_type) for key in new]
        ),
    )
    return len(new)


def lock_collection(conn: Connection, scope: str, name: str) -> Any:
    """The DID's type, open flag and embargo (None: no such DID), its row locked until the
    transaction ends: attachments to it are then counted one after the other."""
    return conn.execute(
        select(dids.c.did_type, dids.c.is_open, dids.c.embargoed, dids.c.embargo_release_at)
        .where(dids.c.scope == scope, dids.c.name == name)
        .with_for_update()
    ).first()


def attach_new_files(
    conn: Connection, scope: str, name: str, files: Sequence[tuple[DIDKey, int]]
) -> Any:
    """Attach files created in this transaction, given with their sizes, to an open dataset.

    What ``attach(..., ignore_duplicates=True)`` does, without reading the files back: they are
    files, of these sizes, attached nowhere yet. The dataset's counters are updated first, which
    locks its row (one statement for the lock and the count). A parent that is not an open
    dataset gets ``attach``'s own answer. Like ``attach``, hands the dataset's embargo down to
    the files. Returns the parent's ``lock_collection`` row, or None when it does not exist
    (nothing attached).
    """
    sizes = dict(files)
    size = sum(sizes.values())
    if size > MAX_INT64:
        raise InvalidInput(f"{size} bytes at once: more than a 64-bit counter holds")
    now = utcnow()
    postgres = conn.dialect.name == "postgresql"
    parent = conn.execute(
        _GROW_OPEN_DATASET_ASKING_RULES if postgres else _GROW_OPEN_DATASET,
        {"p_scope": scope, "p_name": name, "count": len(sizes), "size": size, "now": now},
    ).first()
    if parent is None or not sizes:  # not an open dataset, a counter would overflow, or none
        parent = lock_collection(conn, scope, name)
        if parent is not None:
            attach(conn, scope, name, list(sizes), ignore_duplicates=True)
        return parent
    file_type = DIDType.FILE.value
    insert_rows(
        conn,
        contents,
        ("scope", "name", "child_scope", "child_name", "child_type", "created_at"),
        [(scope, name, child[0], child[1], file_type, now) for child in sizes],
    )
    embargo.paths_changed(conn, (scope, name), names_by_scope(sizes))
    queue.content_changed(
        conn,
        scope,
        name,
        detached=False,
        children=[(*key, file_type) for key in sizes],
        covered=bool(parent.covered) if postgres else None,
    )
    events.emit_many(
        conn, events.membership("did.attached", (scope, name), [(*key, file_type) for key in sizes])
    )
    return parent


def _grow_open_dataset(*, asking_rules: bool) -> Any:
    scope, name = bindparam("p_scope", type_=String()), bindparam("p_name", type_=String())
    asked: list[Any] = [queue.covered_clause(scope, name).label("covered")] if asking_rules else []
    size = bindparam("size", type_=BigInteger())
    return (
        update(dids)
        .where(
            dids.c.scope == scope,
            dids.c.name == name,
            dids.c.did_type == DIDType.DATASET.value,
            dids.c.is_open.is_(True),
            dids.c.bytes <= MAX_INT64 - size,
        )
        .values(
            length=dids.c.length + bindparam("count", type_=BigInteger()),
            bytes=dids.c.bytes + size,
            updated_at=bindparam("now", type_=dids.c.updated_at.type),
        )
        .returning(
            dids.c.did_type,
            dids.c.is_open,
            dids.c.embargoed,
            dids.c.embargo_release_at,
            *asked,
        )
    )


_GROW_OPEN_DATASET_ASKING_RULES = _grow_open_dataset(asking_rules=True)
"""Count new files into an open dataset, locking its row, and say whether rules cover it: one
statement per registration into a dataset on PostgreSQL (built once: building it costs more
than running it)."""
_GROW_OPEN_DATASET = _grow_open_dataset(asking_rules=False)
"""The same without the rules (SQLite renders the columns of an UPDATE's RETURNING unqualified,
which makes the recursive query ambiguous; in-process, the separate query costs microseconds)."""


def _update_totals(
    conn: Connection, scope: str, name: str, did_type: str, count: int, size: int, now: Any
) -> None:
    values: dict[str, Any] = {"length": dids.c.length + count, "updated_at": now}
    query = update(dids).where(dids.c.scope == scope, dids.c.name == name)
    guarded = did_type == DIDType.DATASET and size > 0
    if did_type == DIDType.DATASET:
        values["bytes"] = dids.c.bytes + size
    if guarded:  # a 64-bit column: refuse to overflow it (SQLite would silently make it a REAL)
        if size > MAX_INT64:
            raise InvalidInput(f"{size} bytes at once: more than a 64-bit counter holds")
        query = query.where(dids.c.bytes <= MAX_INT64 - size)
    if conn.execute(query.values(**values)).rowcount == 0 and guarded:
        raise InvalidInput(f"{scope}:{name} would hold more than {MAX_INT64} bytes")


def _check_child_type(parent_type: str, parent: str, row: Any) -> None:
    if parent_type == DIDType.DATASET and row.did_type != DIDType.FILE:
        raise UnsupportedOperation(
            f"{row.scope}:{row.name} is a {row.did_type}: only files go into dataset {parent}"
        )
    if parent_type == DIDType.CONTAINER and row.did_type == DIDType.FILE:
        raise UnsupportedOperation(
            f"{row.scope}:{row.name} is a file: files go into datasets, not into container {parent}"
        )


def _attached(conn: Connection, scope: str, name: str, keys: Sequence[DIDKey]) -> set[DIDKey]:
    attached: set[DIDKey] = set()
    for child_scope, names in names_by_scope(keys):
        rows = conn.execute(
            select(contents.c.child_scope, contents.c.child_name).where(
                contents.c.scope == scope,
                contents.c.name == name,
                contents.c.child_scope == child_scope,
                contents.c.child_name.in_(names),
            )
        )
        attached.update((row.child_scope, row.child_name) for row in rows)
    return attached


def _refuse_cycles(conn: Connection, parent: DIDKey, children: Sequence[DIDKey]) -> None:
    """A container must not end up inside itself."""
    for child in children:
        if child == parent:
            raise UnsupportedOperation(f"{parent[0]}:{parent[1]} cannot contain itself")
        tree = file_tree(*child)
        hit = conn.execute(
            select(tree.c.child_scope)
            .where(tree.c.child_scope == parent[0], tree.c.child_name == parent[1])
            .limit(1)
        ).first()
        if hit is not None:
            raise UnsupportedOperation(
                f"attaching {child[0]}:{child[1]} to {parent[0]}:{parent[1]} would make a cycle"
            )


def detach(conn: Connection, scope: str, name: str, children: Sequence[DIDKey]) -> int:
    """Detach ``children``; each must be attached. Returns how many were detached."""
    parent = conn.execute(
        select(dids).where(dids.c.scope == scope, dids.c.name == name).with_for_update()
    ).first()
    if parent is None:
        raise DIDNotFound(f"DID {scope}:{name} does not exist")
    unique = list(dict.fromkeys(children))
    attached = _attached(conn, scope, name, unique)
    missing = [key for key in unique if key not in attached]
    if missing:
        raise DIDNotFound(f"{missing[0][0]}:{missing[0][1]} is not attached to {scope}:{name}")
    found = _existing(conn, unique)
    for part in chunks(unique):
        conn.execute(
            delete(contents).where(
                contents.c.scope == scope,
                contents.c.name == name,
                tuple_(contents.c.child_scope, contents.c.child_name).in_(part),
            )
        )
    embargo.paths_changed(conn, (scope, name), names_by_scope(unique))
    removed_bytes = sum(found[key].bytes or 0 for key in unique)
    _update_totals(conn, scope, name, parent.did_type, -len(unique), -removed_bytes, utcnow())
    queue.content_changed(conn, scope, name, detached=True)
    events.emit_many(
        conn,
        events.membership(
            "did.detached", (scope, name), [(*key, found[key].did_type) for key in unique]
        ),
    )
    return len(unique)


def set_open(conn: Connection, scope: str, name: str, *, is_open: bool) -> None:
    did_type = get_did_row_type(conn, scope, name)
    if did_type != DIDType.DATASET:
        raise UnsupportedOperation(f"{scope}:{name} is a {did_type}: only datasets open and close")
    now = utcnow()
    conn.execute(
        update(dids)
        .where(dids.c.scope == scope, dids.c.name == name)
        .values(is_open=is_open, closed_at=None if is_open else now, updated_at=now)
    )
    if not is_open:
        events.emit(conn, "did.closed", {"did_type": did_type}, scope=scope, name=name)


def ancestors(
    conn: Connection, keys: Sequence[DIDKey], *, viewer: Viewer | None = None
) -> dict[DIDKey, list[str]]:
    """Every collection above each DID (transitively), as ``scope:name`` strings, sorted."""
    found: dict[DIDKey, set[str]] = {}
    for scope, names in names_by_scope(keys):
        base = select(
            contents.c.child_scope.label("start_scope"),
            contents.c.child_name.label("start_name"),
            contents.c.scope,
            contents.c.name,
        ).where(contents.c.child_scope == scope, contents.c.child_name.in_(names))
        tree = base.cte("up", recursive=True)
        step = select(
            tree.c.start_scope, tree.c.start_name, contents.c.scope, contents.c.name
        ).join(
            tree,
            and_(contents.c.child_scope == tree.c.scope, contents.c.child_name == tree.c.name),
        )
        tree = tree.union(step)
        rows = conn.execute(
            select(tree)
            .join(dids, and_(dids.c.scope == tree.c.scope, dids.c.name == tree.c.name))
            .where(visible(viewer))
        )
        for row in rows:
            found.setdefault((row.start_scope, row.start_name), set()).add(
                f"{row.scope}:{row.name}"
            )
    return {key: sorted(value) for key, value in found.items()}
