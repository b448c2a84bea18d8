"""In-line adapters' value conversion: CRM JSON values as the snapshot's, errors naming the field.

Every converter takes the raw value and where it sits in the caller's body (``after.CloseDate``)
and returns the snapshot's value, or None for an empty one, or raises
:class:`~tsos_rules.errors.ChangeError` naming that place.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from tsos_rules.errors import ChangeError
from tsos_rules.snapshot.change import number_in_range

_NON_WORD = re.compile(r"[^0-9a-z]+")

#: A converter: ``(raw value, where) -> snapshot value``.
Convert = Callable[[Any, str], Any]


def shown(value: Any) -> str:
    """A value as an error message shows it: its repr, cut at 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def body_object(value: Any, where: str) -> dict[str, Any]:
    """``value`` when it is a JSON object, else a ChangeError naming ``where``."""
    if type(value) is not dict:
        raise ChangeError(where, f"expected an object, got {shown(value)}")
    return value


def include_info(body: Mapping[str, Any]) -> bool:
    """The body's optional ``include_info`` flag (info findings are left out by default)."""
    value = body.get("include_info", False)
    if type(value) is not bool:
        raise ChangeError("include_info", f"expected true or false, got {shown(value)}")
    return value


def snake(value: str) -> str:
    """A picklist label as a snake_case value: ``"Closed Won"`` -> ``"closed_won"``."""
    return _NON_WORD.sub("_", value.casefold()).strip("_")


def text(value: Any, where: str) -> str | None:
    """Text (a whole number is taken as its digits)."""
    if value is None or value == "":
        return None
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    raise ChangeError(where, f"expected text, got {shown(value)}")


def number(value: Any, where: str) -> float | None:
    """A finite number, from a JSON number or its text."""
    if value is None or value == "":
        return None
    if type(value) in (int, float, str):
        try:
            parsed = float(value)
        except OverflowError:  # an integer with hundreds of digits
            parsed = math.inf
        except ValueError:
            parsed = math.nan
        if number_in_range(parsed):
            return parsed
        if parsed == parsed and not (type(value) is str and "inf" in value.lower()):
            raise ChangeError(where, f"number out of range: {shown(value)}")
    raise ChangeError(where, f"expected a number, got {shown(value)}")


def boolean(value: Any, where: str) -> bool | None:
    """true or false, from JSON or the text ``"true"``/``"false"``."""
    if value is None or value == "":
        return None
    if type(value) is bool:
        return value
    if type(value) is str and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ChangeError(where, f"expected true or false, got {shown(value)}")


def epoch_ms(value: Any) -> dt.datetime | None:
    """Epoch milliseconds (a number or its digits) as a UTC moment; None when it is not."""
    digits = type(value) is str and len(value) <= 15 and value.isascii() and value.isdigit()
    if type(value) is int or digits:
        try:
            return dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def date(value: Any, where: str) -> str | None:
    """A date from ``YYYY-MM-DD``, an ISO timestamp (its UTC date) or epoch milliseconds."""
    if value is None or value == "":
        return None
    moment = epoch_ms(value)
    if moment is None and type(value) is str:
        if len(value) == 10:
            try:
                return dt.date.fromisoformat(value).isoformat()
            except ValueError:
                pass
        else:
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                if parsed.tzinfo is not None:
                    moment = parsed.astimezone(dt.UTC)
    if moment is None:
        raise ChangeError(where, f"expected a date (YYYY-MM-DD or epoch ms), got {shown(value)}")
    return moment.date().isoformat()


def timestamp(value: Any, where: str) -> str | None:
    """An ISO timestamp with an offset, or epoch milliseconds."""
    if value is None or value == "":
        return None
    moment = epoch_ms(value)
    if moment is None and type(value) is str:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                moment = parsed
    if moment is None:
        raise ChangeError(
            where, f"expected a timestamp with an offset or epoch ms, got {shown(value)}"
        )
    return moment.isoformat()


def picklist(value: Any, where: str) -> str | None:
    """A picklist value as snake_case."""
    label = text(value, where)
    return snake(label) if label is not None else None


_FORECAST: Final = {
    "pipeline": "pipeline",
    "best_case": "best_case",
    "bestcase": "best_case",
    "commit": "commit",
    "forecast": "commit",  # the API value some CRMs use for Commit
    "closed": "closed",
    "omitted": "omitted",
    "omit": "omitted",
}


def forecast(value: Any, where: str) -> str | None:
    """A forecast category in the common CRM spellings (``Best Case``, ``BEST_CASE``, ``OMIT``)."""
    category = picklist(value, where)
    if category is None:
        return None
    if category not in _FORECAST:
        raise ChangeError(
            where,
            f"expected a forecast category (Pipeline, Best Case, Commit, Closed, Omitted), "
            f"got {shown(value)}",
        )
    return _FORECAST[category]


def mapped(
    source: Mapping[str, Any],
    fields: Mapping[str, tuple[tuple[str, ...], Convert]],
    where: Callable[[str], str],
) -> tuple[dict[str, Any], set[str]]:
    """Our fields from a CRM record; returns them and the CRM names consumed."""
    out: dict[str, Any] = {}
    used: set[str] = set()
    for ours, (theirs, convert) in fields.items():
        for name in theirs:
            if name in source:
                used.add(name)
                if ours not in out or out[ours] is None:
                    out[ours] = convert(source[name], where(name))
    return out, used
