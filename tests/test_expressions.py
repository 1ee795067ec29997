"""RSE expressions: the parser and evaluator against a brute-force evaluation of the same tree.

Random expression trees are rendered to text (fully parenthesised), parsed and evaluated by Lacus,
and compared with evaluating the tree RSE by RSE with independent, obvious code.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lacus.core.expressions import evaluate, parse, resolve
from lacus.errors import InvalidRSEExpression

NAMES = ["ALPHA", "BETA", "GAMMA", "DELTA", "EPSILON"]
KEYS = ["site", "qos", "tier", "tape"]
VALUES = {"site": ["CERN", "PIC", "DESY"], "qos": ["DISK", "TAPE"], "tier": ["0", "1", "2", "10"],
          "tape": ["true", "false"]}  # fmt: skip


@dataclass(frozen=True)
class Cond:
    key: str
    op: str
    value: str


@dataclass(frozen=True)
class Op:
    op: str
    left: object
    right: object


rses_strategy = st.fixed_dictionaries(
    {
        name: st.dictionaries(
            st.sampled_from(KEYS),
            st.sampled_from(["CERN", "PIC", "DISK", "TAPE", "1", "2", "10", "true", "false"]),
        )
        for name in NAMES
    }
)


def leaves() -> st.SearchStrategy[object]:
    equality = st.builds(
        Cond, st.sampled_from(KEYS), st.sampled_from(["=", "!="]),
        st.sampled_from(["CERN", "PIC", "DISK", "TAPE", "1", "2", "true"]),
    )  # fmt: skip
    numeric = st.builds(
        Cond,
        st.just("tier"),
        st.sampled_from(["<", ">", "<=", ">="]),
        st.sampled_from(["1", "2", "5"]),
    )
    return st.one_of(st.just("*"), st.sampled_from(NAMES), st.just("tape"), equality, numeric)


trees = st.recursive(
    leaves(),
    lambda inner: st.builds(Op, st.sampled_from(["|", "&", "\\"]), inner, inner),
    max_leaves=8,
)


def render(node: object) -> str:
    if isinstance(node, Op):
        return f"({render(node.left)}{node.op}{render(node.right)})"
    if isinstance(node, Cond):
        return f"{node.key}{node.op}{node.value}"
    return str(node)


def number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def holds(node: object, name: str, attrs: dict[str, str], all_names: set[str]) -> bool:
    """Does RSE ``name`` satisfy ``node``? Written independently of lacus.core.expressions."""
    if node == "*":
        return True
    if isinstance(node, str):
        if node in all_names:
            return name == node
        return attrs.get(node, "").lower() in ("true", "1", "yes")
    if isinstance(node, Cond):
        actual = attrs.get(node.key)
        same = actual is not None and (
            actual == node.value
            or (number(actual) is not None and number(actual) == number(node.value))
        )
        if node.op == "=":
            return same
        if node.op == "!=":
            return not same
        left, right = number(actual), number(node.value)
        if left is None or right is None:
            return False
        return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[
            node.op
        ]
    assert isinstance(node, Op)
    a = holds(node.left, name, attrs, all_names)
    b = holds(node.right, name, attrs, all_names)
    return {"|": a or b, "&": a and b, "\\": a and not b}[node.op]


def keys_used(node: object) -> set[str]:
    if isinstance(node, Op):
        return keys_used(node.left) | keys_used(node.right)
    if isinstance(node, Cond):
        return {node.key}
    if node in ("tape",):
        return {"tape"}
    return set()


@settings(max_examples=300, deadline=None)
@given(rses=rses_strategy, tree=trees)
def test_evaluation_matches_brute_force(rses: dict[str, dict[str, str]], tree: object) -> None:
    present = {key for attrs in rses.values() for key in attrs}
    assume(keys_used(tree) <= present)  # unknown attributes are errors, tested below
    text = render(tree)
    expected = {name for name, attrs in rses.items() if holds(tree, name, attrs, set(rses))}
    assert evaluate(parse(text), rses) == expected, text


@settings(max_examples=100, deadline=None)
@given(rses=rses_strategy, a=trees, b=trees, c=trees)
def test_operators_chain_left_to_right(
    rses: dict[str, dict[str, str]], a: object, b: object, c: object
) -> None:
    present = {key for attrs in rses.values() for key in attrs}
    assume((keys_used(a) | keys_used(b) | keys_used(c)) <= present)
    flat = f"{render(a)}|{render(b)}\\{render(c)}"
    grouped = f"({render(a)}|{render(b)})\\{render(c)}"
    assert evaluate(parse(flat), rses) == evaluate(parse(grouped), rses)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("(ALPHA", "missing"),
        ("ALPHA|", "ends too early"),
        ("&ALPHA", "unexpected"),
        ("tier<abc", "needs a number"),
        ("colour=red", "no RSE has the attribute"),
        ("NOWHERE", "neither an RSE nor an RSE attribute"),
        ("site=MARS", "matches no RSE"),
        ("(" * 40 + "ALPHA" + ")" * 40, "nest"),
        ("ALPHA" + "|ALPHA" * 400, "longer than"),
    ],
)
def test_bad_expressions_say_why(text: str, message: str) -> None:
    rses = {"ALPHA": {"site": "CERN", "tier": "1"}, "BETA": {"site": "PIC", "tier": "2"}}
    with pytest.raises(InvalidRSEExpression, match=message):
        resolve(text, rses)
