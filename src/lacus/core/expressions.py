"""RSE expressions: a small grammar over RSE names and attributes, evaluated to a set of RSEs.

    expression := term (("|" | "&" | "\\") term)*      union, intersection, complement;
                                                       equal precedence, left to right
    term       := "(" expression ")" | "*" | condition | word
    condition  := key ("=" | "!=") value | key ("<" | ">" | "<=" | ">=") number
    word       := an RSE name, else an attribute key whose value is true

Every RSE carries the implicit attributes ``rse`` (its name) and ``rse_type`` (disk, tape).
Parsing and evaluation are pure: ``evaluate(parse(text), rses)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from lacus.errors import InvalidRSEExpression

MAX_LENGTH = 1000
MAX_DEPTH = 20
"""Parentheses nested in one expression (the parser recurses once per level)."""
_TOKEN = re.compile(
    r"\s*(?:(?P<op>[|&\\()])|(?P<cond>[A-Za-z0-9_.\-]+\s*(?:!=|<=|>=|=|<|>)\s*[A-Za-z0-9_.:/\-+]+)"
    r"|(?P<star>\*)|(?P<word>[A-Za-z0-9_.\-]+))"
)
_COND = re.compile(r"([A-Za-z0-9_.\-]+)\s*(!=|<=|>=|=|<|>)\s*(.+)")
_TRUE = {"true", "1", "yes"}


@dataclass(frozen=True, slots=True)
class All:
    pass


@dataclass(frozen=True, slots=True)
class Word:
    word: str


@dataclass(frozen=True, slots=True)
class Condition:
    key: str
    op: str
    value: str


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Node
    right: Node


Node = All | Word | Condition | Binary


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            snippet = text[position : position + 10]
            raise InvalidRSEExpression(
                f"invalid RSE expression {text[:80]!r}: unexpected {snippet!r}"
            )
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def parse(text: str) -> Node:
    """Parse an RSE expression, or raise InvalidRSEExpression saying where it is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidRSEExpression("the RSE expression is empty")
    if len(text) > MAX_LENGTH:
        raise InvalidRSEExpression(f"the RSE expression is longer than {MAX_LENGTH} characters")
    tokens = _tokens(text)
    node, rest = _expression(tokens, 0, text)
    if rest != len(tokens):
        raise InvalidRSEExpression(f"invalid RSE expression {text[:80]!r}: unexpected ')'")
    return node


def _expression(
    tokens: list[tuple[str, str]], index: int, text: str, depth: int = 0
) -> tuple[Node, int]:
    node, index = _term(tokens, index, text, depth)
    while index < len(tokens) and tokens[index] in (("op", "|"), ("op", "&"), ("op", "\\")):
        op = tokens[index][1]
        right, index = _term(tokens, index + 1, text, depth)
        node = Binary(op, node, right)
    return node, index


def _term(tokens: list[tuple[str, str]], index: int, text: str, depth: int) -> tuple[Node, int]:
    if index >= len(tokens):
        raise InvalidRSEExpression(f"invalid RSE expression {text[:80]!r}: it ends too early")
    kind, value = tokens[index]
    if (kind, value) == ("op", "("):
        if depth >= MAX_DEPTH:
            raise InvalidRSEExpression(
                f"invalid RSE expression {text[:80]!r}: more than {MAX_DEPTH} nested parentheses"
            )
        node, index = _expression(tokens, index + 1, text, depth + 1)
        if index >= len(tokens) or tokens[index] != ("op", ")"):
            raise InvalidRSEExpression(f"invalid RSE expression {text[:80]!r}: missing ')'")
        return node, index + 1
    if kind == "star":
        return All(), index + 1
    if kind == "word":
        return Word(value), index + 1
    if kind == "cond":
        match = _COND.fullmatch(value)
        assert match is not None
        key, op, operand = match.groups()
        if op in ("<", ">", "<=", ">=") and _number(operand) is None:
            raise InvalidRSEExpression(f"invalid RSE expression: {key}{op} needs a number")
        return Condition(key, op, operand.strip()), index + 1
    raise InvalidRSEExpression(f"invalid RSE expression {text[:80]!r}: unexpected {value!r}")


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


RSEAttributes = Mapping[str, Mapping[str, str]]
"""RSE name → its attributes (including the implicit ``rse`` and ``rse_type``)."""


def evaluate(node: Node, rses: RSEAttributes) -> set[str]:
    """The names of the RSEs ``node`` selects; unknown names and attributes raise."""
    match node:
        case All():
            return set(rses)
        case Word(word):
            if word in rses:
                return {word}
            if not any(word in attrs for attrs in rses.values()):
                raise InvalidRSEExpression(f"{word!r} is neither an RSE nor an RSE attribute")
            return {name for name, attrs in rses.items() if attrs.get(word, "").lower() in _TRUE}
        case Condition(key, op, value):
            if not any(key in attrs for attrs in rses.values()):
                raise InvalidRSEExpression(f"no RSE has the attribute {key!r}")
            return {name for name, attrs in rses.items() if _matches(attrs.get(key), op, value)}
        case Binary(op, left, right):
            a, b = evaluate(left, rses), evaluate(right, rses)
            return a | b if op == "|" else a & b if op == "&" else a - b
    raise InvalidRSEExpression("invalid RSE expression")


def _matches(actual: str | None, op: str, value: str) -> bool:
    if actual is None:
        return op == "!="
    if op == "=":
        return actual == value or _same_number(actual, value)
    if op == "!=":
        return not (actual == value or _same_number(actual, value))
    left, right = _number(actual), _number(value)
    if left is None or right is None:
        return False
    return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]


def _same_number(a: str, b: str) -> bool:
    x, y = _number(a), _number(b)
    return x is not None and y is not None and x == y


def resolve(text: str, rses: RSEAttributes) -> list[str]:
    """Parse and evaluate; an expression matching nothing is an error. Names in sorted order."""
    selected = evaluate(parse(text), rses)
    if not selected:
        raise InvalidRSEExpression(f"RSE expression {text[:80]!r} matches no RSE")
    return sorted(selected)
