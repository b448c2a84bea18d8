"""The sync's org totals are the exact sum of the shares, rounded once: summing them as floats
in any order (or subtracting a record's old share) never drifts from that."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tsos_rules.engine.aggregates import BoundAggregate
from tsos_rules.rules.spec import Aggregate
from tsos_rules.sync import totals

AMOUNTS = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)
SHARES = st.lists(st.tuples(st.sampled_from(["p1", "p2"]), AMOUNTS), max_size=40)


def _bound() -> tuple[BoundAggregate, ...]:
    def contribution(record: Any, parameters: Any) -> tuple[str, float] | None:
        return None

    return (
        BoundAggregate(
            Aggregate(name="a", record_type="opportunity", contribution=contribution), {}
        ),
    )


def _exact(values: list[tuple[str, float]]) -> dict[str, float]:
    sums: dict[str, Fraction] = {}
    for key, value in values:
        sums[key] = sums.get(key, Fraction(0)) + Fraction(value)
    return {key: float(value) for key, value in sorted(sums.items())}


@settings(max_examples=300, deadline=None)
@given(stored=SHARES, replaced=SHARES)
def test_totals_from_stored_shares_equal_the_exact_sum_rounded_once(
    stored: list[tuple[str, float]], replaced: list[tuple[str, float]]
) -> None:
    # the first len(replaced) stored shares are read again with new values
    before = {("a", "opportunity", str(i)): share for i, share in enumerate(stored)}
    read: dict[Any, Any] = {("a", "opportunity", str(i)): share for i, share in enumerate(replaced)}
    update = totals.from_stored(_bound(), [("a", k, v) for k, v in stored], before, read)
    now = dict(before)
    now.update(read)
    exact = _exact(list(now.values()))
    for key in {*exact, *update.totals["a"]}:  # a key whose shares all moved away totals 0
        assert update.totals["a"].get(key, 0.0) == exact.get(key, 0.0)


def test_one_cent_many_times_is_the_exact_sum() -> None:
    cents = [("p1", 0.01)] * 1000 + [("p1", 1e16), ("p1", -1e16)]
    update = totals.from_stored(_bound(), [("a", k, v) for k, v in cents], {}, {})
    assert update.totals["a"]["p1"] == float(
        Fraction(1, 100) * 0 + sum(map(Fraction, [0.01] * 1000))
    )


@settings(max_examples=300, deadline=None)
@given(stored=SHARES, replaced=SHARES)
def test_the_totals_that_fell_are_those_whose_exact_sum_is_lower(
    stored: list[tuple[str, float]], replaced: list[tuple[str, float]]
) -> None:
    before = {("a", "opportunity", str(i)): share for i, share in enumerate(stored)}
    read: dict[Any, Any] = {("a", "opportunity", str(i)): share for i, share in enumerate(replaced)}
    update = totals.from_stored(_bound(), [("a", k, v) for k, v in stored], before, read)
    now = dict(before)
    now.update(read)

    def exact(shares: list[tuple[str, float]], key: str) -> Fraction:
        return sum((Fraction(v) for k, v in shares if k == key), Fraction(0))

    moved = update.moved.get("a", frozenset())
    # lower as the rules read it: the float, which an exact change too small to move it
    # leaves where it was (rounding keeps order, so a lower float is a lower exact sum)
    fell = {k for k in moved if float(exact(list(now.values()), k)) < float(exact(stored, k))}
    assert update.fell.get("a", frozenset()) == fell
    assert update.fell.get("a", frozenset()) <= moved
