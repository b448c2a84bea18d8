"""What an incremental sync stores of the packs' shares after its own read: the shares of the
records it read as changed (or held back), never those of the context and re-judged readers
it brought along, whose shares cannot differ from the ones stored for them."""

from __future__ import annotations

from typing import Any

from tsos_rules.connectors.base import ReadResult
from tsos_rules.engine.aggregates import BoundAggregate
from tsos_rules.rules.spec import Aggregate
from tsos_rules.sync import totals
from tsos_rules.testing import builders as b


def _commit(deal: Any, parameters: Any) -> tuple[str, float] | None:
    if deal.partner_id and deal.forecast_category == "commit":
        return deal.partner_id, deal.amount or 0.0
    return None


BOUND = (
    BoundAggregate(Aggregate(name="commit", record_type="opportunity", contribution=_commit), {}),
)


def _batch(**keys: frozenset[tuple[str, str]]) -> ReadResult:
    deals = [
        b.channel_deal("changed", forecast_category="commit", amount=500),
        b.channel_deal("context", forecast_category="commit", amount=900),
        b.channel_deal("held", forecast_category="commit", amount=70),
        b.channel_deal("none", forecast_category="pipeline"),
    ]
    return ReadResult(
        snapshot=b.to_snapshot(b.snapshot(opportunities=deals)),
        watermark="w",
        changed=keys.get("changed", frozenset()),
        affected=keys.get("affected", frozenset()),
        incomplete=keys.get("incomplete", frozenset()),
        deleted=keys.get("deleted", frozenset()),
    )


def _ref(record_id: str) -> tuple[str, str, str]:
    return ("commit", "opportunity", record_id)


def test_refresh_stores_the_changed_held_and_deleted_records_shares_only() -> None:
    update = totals.TotalsUpdate(totals={}, shares={_ref("context"): ("p1", 900.0)}, replace=False)
    update.refresh(
        BOUND,
        _batch(
            changed=frozenset({("opportunity", "changed"), ("opportunity", "none")}),
            affected=frozenset({("opportunity", "context")}),
            incomplete=frozenset({("opportunity", "held")}),
            deleted=frozenset({("opportunity", "gone")}),
        ),
    )
    assert update.shares == {
        _ref("context"): ("p1", 900.0),  # as stored before: unchanged, not rewritten
        _ref("changed"): ("p1", 500.0),
        _ref("held"): ("p1", 70.0),
        _ref("none"): None,  # a changed record that adds nothing now: its old share goes
        _ref("gone"): None,
    }


def test_a_batch_of_readers_judged_again_stores_no_share() -> None:
    update = totals.TotalsUpdate(totals={}, shares={}, replace=False)
    update.refresh(BOUND, _batch(affected=frozenset({("opportunity", "context")})))
    assert update.shares == {}


def test_a_full_read_keeps_only_the_shares_that_add() -> None:
    update = totals.TotalsUpdate(totals={}, shares={_ref("none"): ("p1", 1.0)}, replace=True)
    update.refresh(
        BOUND, _batch(changed=frozenset({("opportunity", "changed"), ("opportunity", "none")}))
    )
    assert update.shares == {_ref("changed"): ("p1", 500.0)}
