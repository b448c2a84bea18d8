"""Salesforce formula expressions as a small tree, rendered to formula text.

Only what the compilers emit: field references (``Account.Partner_of_Record__c``), function
calls (``AND``, ``ISPICKVAL``, ``PRIORVALUE`` ...), literals, comparisons and a date plus days.
Rendering escapes string literals the way the formula language reads them (backslash and
double quote).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import attrs


@attrs.frozen
class Ref:
    """A field or a cross-object path: ``CloseDate``, ``Owner.UserRole.Name``, ``$Permission.X``."""

    path: str

    def render(self) -> str:
        return self.path


@attrs.frozen
class Text:
    """A string literal."""

    value: str

    def render(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'


@attrs.frozen
class Number:
    """A whole-number literal."""

    value: int

    def render(self) -> str:
        return str(self.value)


@attrs.frozen
class Bool:
    """``TRUE`` or ``FALSE``."""

    value: bool

    def render(self) -> str:
        return "TRUE" if self.value else "FALSE"


@attrs.frozen
class Call:
    """A function call: ``NAME(arg, ...)``."""

    name: str
    args: tuple[Expr, ...]

    def render(self) -> str:
        return f"{self.name}({', '.join(a.render() for a in self.args)})"


COMPARISONS = ("=", "<>", "<", ">", "<=", ">=")


@attrs.frozen
class Compare:
    """``left OP right``, always parenthesised so precedence never matters."""

    op: str = attrs.field(validator=attrs.validators.in_(COMPARISONS))
    left: Expr = attrs.field()
    right: Expr = attrs.field()

    def render(self) -> str:
        return f"({self.left.render()} {self.op} {self.right.render()})"


@attrs.frozen
class Plus:
    """``(left + right)``: a date plus a number of days (``TODAY() + 180``), parenthesised."""

    left: Expr
    right: Expr

    def render(self) -> str:
        return f"({self.left.render()} + {self.right.render()})"


Expr = Ref | Text | Number | Bool | Call | Compare | Plus

TRUE = Bool(True)
FALSE = Bool(False)


def call(name: str, *args: Expr) -> Call:
    return Call(name, args)


def and_(*terms: Expr) -> Expr:
    """``AND`` of the terms, flattening nested ANDs and dropping ``TRUE``; ``FALSE`` wins."""
    flat: list[Expr] = []
    for term in terms:
        if term == TRUE:
            continue
        if term == FALSE:
            return FALSE
        flat.extend(term.args if isinstance(term, Call) and term.name == "AND" else (term,))
    if not flat:
        return TRUE
    return flat[0] if len(flat) == 1 else Call("AND", tuple(flat))


def or_(*terms: Expr) -> Expr:
    """``OR`` of the terms, flattening nested ORs and dropping ``FALSE``; ``TRUE`` wins."""
    flat: list[Expr] = []
    for term in terms:
        if term == FALSE:
            continue
        if term == TRUE:
            return TRUE
        flat.extend(term.args if isinstance(term, Call) and term.name == "OR" else (term,))
    if not flat:
        return FALSE
    return flat[0] if len(flat) == 1 else Call("OR", tuple(flat))


def any_of(terms: Iterable[Expr]) -> Expr:
    return or_(*terms)


def not_(term: Expr) -> Expr:
    if term == TRUE:
        return FALSE
    if term == FALSE:
        return TRUE
    if isinstance(term, Call) and term.name == "NOT":
        return term.args[0]
    return Call("NOT", (term,))


def is_blank(term: Expr) -> Call:
    return call("ISBLANK", term)


def prior(term: Expr) -> Call:
    return call("PRIORVALUE", term)


def text_of(term: Expr) -> Call:
    return call("TEXT", term)


def lower_text(term: Expr) -> Call:
    """``LOWER(TEXT(picklist))``: a picklist's value compared without regard to case."""
    return call("LOWER", text_of(term))


def today() -> Call:
    return call("TODAY")


def date(day: dt.date) -> Call:
    return call("DATE", Number(day.year), Number(day.month), Number(day.day))


def compare(op: str, left: Expr, right: Expr) -> Compare:
    return Compare(op, left, right)


def render(expr: Expr) -> str:
    """The formula text of an expression."""
    return expr.render()
