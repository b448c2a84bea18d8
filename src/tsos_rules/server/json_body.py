"""A request body as JSON, refusing what no adapter could use, with the field it sits in.

Python's ``json`` accepts more than the rules (or the decision log) can take: a lone surrogate
from a ``\\ud800`` escape (text that cannot be written as UTF-8), numbers beyond a float's
range (``1e400`` becomes infinity) and ``NaN``/``Infinity`` literals (not JSON at all). Each is
a :class:`~tsos_rules.errors.ChangeError` naming the field (``change.after.amount``), raised
before anything is judged or logged. Integers of any length are valid JSON and stay as they
are; the fields the rules read refuse them beyond
:data:`~tsos_rules.snapshot.change.NUMBER_LIMIT` (see :mod:`tsos_rules.snapshot.change`).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

from tsos_rules.errors import ChangeError

#: What in the raw body can produce a suspect value: a surrogate escape, a run of 300 digits or
#: an exponent of 100 or more (an infinite float needs one of the two). Without any, the
#: parsed body needs no walk (the common, cheap case).
_SUSPECT: Final = re.compile(rb"\\u[dD][89a-fA-F]|[0-9]{300}|[eE][+-]?0*[0-9]{3}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_body(body: bytes) -> Any:
    """The body's JSON value; a ChangeError naming ``body`` or the offending field."""
    if not body.strip():
        raise ChangeError("body", "empty: expected a JSON object")
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise ChangeError("body", "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ChangeError(
            "body", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise ChangeError("body", "nested too deeply") from None
    except ValueError as exc:
        raise ChangeError("body", f"not valid JSON: {exc}") from None
    if _SUSPECT.search(body) or not body.isascii():
        check_values(value)
    return value


def check_values(value: Any, where: str = "") -> None:
    """Raise a ChangeError naming the first unusable text or float in ``value`` (no recursion:
    the parser already bounds the depth)."""
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        path, item = stack.pop()
        kind = type(item)
        if kind is str:
            _check_text(item, path)
        elif kind is float:
            if not math.isfinite(item):
                raise ChangeError(path or "body", "number out of range")
        elif kind is dict:
            for key, child in reversed(item.items()):
                _check_text(key, path or "body")
                stack.append((f"{path}.{key}" if path else key, child))
        elif kind is list:
            for index in range(len(item) - 1, -1, -1):
                stack.append((f"{path}[{index}]", item[index]))


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        raise ChangeError(
            where or "body", f"not valid Unicode text: a lone surrogate \\u{code:04x}"
        ) from None
