"""A test-only evaluator for the Salesforce formula subset the compiler emits.

It parses the rendered formula *text* (not the compiler's tree), so a rendering bug shows up as
a disagreement. Semantics follow Salesforce's function reference: ``ISCHANGED`` is false and
``PRIORVALUE`` returns the current value on a new record; ``AND``/``OR``/``IF`` evaluate lazily;
a blank text reads as ``""`` in text functions. Comparing a blank date or number raises, so an
unguarded null in a generated formula fails the test instead of silently passing.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>\d+)|(?P<op><>|<=|>=|=|<|>)|(?P<plus>\+)'
    r"|(?P<name>\$?[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)|(?P<punct>[(),]))"
)


@attrs.frozen
class Node:
    kind: str  # ref, str, num, bool, call, cmp, plus
    value: Any = None
    args: tuple[Node, ...] = ()


def parse(text: str) -> Node:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise SyntaxError(f"cannot read the formula at {pos}: {text[pos : pos + 20]!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    parser = _Parser(tokens)
    node = parser.expr()
    if parser.i != len(tokens):
        raise SyntaxError(f"trailing tokens: {tokens[parser.i :]}")
    return node


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.tokens[self.i]
        if value is not None and token[1] != value:
            raise SyntaxError(f"expected {value!r}, got {token[1]!r}")
        self.i += 1
        return token

    def expr(self) -> Node:
        left = self.sum()
        token = self.peek()
        if token is not None and token[0] == "op":
            self.take()
            return Node("cmp", token[1], (left, self.sum()))
        return left

    def sum(self) -> Node:
        left = self.primary()
        while self.peek() == ("plus", "+"):
            self.take("+")
            left = Node("plus", None, (left, self.primary()))
        return left

    def primary(self) -> Node:
        kind, value = self.take()
        if value == "(":
            node = self.expr()
            self.take(")")
            return node
        if kind == "num":
            return Node("num", int(value))
        if kind == "str":
            return Node("str", re.sub(r"\\(.)", r"\1", value[1:-1]))
        if kind != "name":
            raise SyntaxError(f"unexpected {value!r}")
        if value in ("TRUE", "FALSE"):
            return Node("bool", value == "TRUE")
        token = self.peek()
        if token is not None and token[1] == "(":
            self.take("(")
            args: list[Node] = []
            if self.peek() != ("punct", ")"):
                args.append(self.expr())
                while self.peek() == ("punct", ","):
                    self.take(",")
                    args.append(self.expr())
            self.take(")")
            return Node("call", value, tuple(args))
        return Node("ref", value)


@attrs.frozen
class Save:
    """One save as a validation rule sees it: the record after, before (None on create)."""

    after: Mapping[str, Any]
    before: Mapping[str, Any] | None
    today: dt.date
    permissions: frozenset[str] = frozenset()


def _resolve(record: Mapping[str, Any] | None, path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if value is None:
            return None
        value = value.get(part)
    return value


def _java_regex(pattern: str) -> str:
    """The Java constructs the compiler emits, in Python's ``re`` (str patterns are Unicode)."""
    out = pattern.replace(r"[^\p{L}\p{N}]", r"[\W_]").replace(r"[\s\p{Z}]", r"\s")
    return re.sub(r"^\(\?([a-z]+)\)", lambda m: f"(?{m.group(1).replace('u', '')})", out)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    is_last = day.day == calendar.monthrange(day.year, day.month)[1]
    return dt.date(year, month + 1, last if is_last else min(day.day, last))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _blank(value: Any) -> bool:
    return value is None or value == ""


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        raise ValueError(f"comparison {op} with a blank value: guard it with ISBLANK")
    return {
        "=": left == right,
        "<>": left != right,
        "<": left < right,
        ">": left > right,
        "<=": left <= right,
        ">=": left >= right,
    }[op]


class Evaluator:
    """Evaluates a parsed formula for one save."""

    def __init__(self, save: Save) -> None:
        self.save = save

    def run(self, node: Node) -> Any:
        kind = node.kind
        if kind in ("str", "num", "bool"):
            return node.value
        if kind == "ref":
            return self.ref(node.value, prior=False)
        if kind == "cmp":
            left, right = (self.run(a) for a in node.args)
            return _compare(node.value, left, right)
        if kind == "plus":
            left, right = (self.run(a) for a in node.args)
            if left is None or right is None:
                raise ValueError("+ with a blank value: guard it with ISBLANK")
            if isinstance(left, dt.date) and isinstance(right, int):
                return left + dt.timedelta(days=right)  # Date + Number = a date that many days on
            return left + right
        return self.call(node.value, node.args)

    def ref(self, path: str, *, prior: bool) -> Any:
        if path.startswith("$Permission."):
            return path.split(".", 1)[1] in self.save.permissions
        if prior:
            if "." in path:
                raise ValueError(f"PRIORVALUE of a cross-object field: {path}")
            record = self.save.before if self.save.before is not None else self.save.after
            return _resolve(record, path)
        return _resolve(self.save.after, path)

    def call(self, name: str, args: tuple[Node, ...]) -> Any:
        run = self.run
        if name == "AND":
            return all(run(a) for a in args)
        if name == "OR":
            return any(run(a) for a in args)
        if name == "NOT":
            return not run(args[0])
        if name == "IF":
            return run(args[1]) if run(args[0]) else run(args[2])
        if name == "CASE":
            value = run(args[0])
            pairs = args[1:-1]
            for key, result in zip(pairs[::2], pairs[1::2], strict=True):
                if run(key) == value:
                    return run(result)
            return run(args[-1])
        if name == "PRIORVALUE":
            return self.ref(_field(args[0]), prior=True)
        if name == "ISCHANGED":
            if self.save.before is None:
                return False
            path = _field(args[0])
            old, new = self.ref(path, prior=True), self.ref(path, prior=False)
            return (None if _blank(old) else old) != (None if _blank(new) else new)
        if name == "ISNEW":
            return self.save.before is None
        functions: dict[str, Callable[..., Any]] = {
            "ISBLANK": _blank,
            "ISPICKVAL": lambda value, literal: _text(value) == literal,
            "TEXT": _text,
            "LOWER": lambda text: text.lower(),
            "VALUE": lambda text: float(text),
            "TODAY": lambda: self.save.today,
            "DATE": dt.date,
            "YEAR": lambda day: day.year,
            "MONTH": lambda day: day.month,
            "ADDMONTHS": _add_months,
            "REGEX": lambda text, pattern: (
                re.fullmatch(_java_regex(pattern), _text(text)) is not None
            ),
        }
        if name not in functions:
            raise ValueError(f"function {name} is outside the evaluated subset")
        return functions[name](*(run(a) for a in args))


def _field(node: Node) -> str:
    if node.kind != "ref":
        raise ValueError("PRIORVALUE and ISCHANGED take a field")
    return str(node.value)


def evaluate(formula: str | Node, save: Save) -> bool:
    """True when the formula fires (the save would be refused)."""
    node = parse(formula) if isinstance(formula, str) else formula
    return bool(Evaluator(save).run(node))
