"""The Python API's ``check`` marks findings exactly as ``tsos-rules check`` does."""

from __future__ import annotations

import tsos_rules

SNAPSHOT = {"as_of": "2026-11-24", "opportunities": [{"id": "o1", "next_step": "TBD"}]}


def test_check_marks_shadow_and_exempt_findings_and_they_do_not_block() -> None:
    plain = tsos_rules.check(SNAPSHOT)
    assert plain.blocking and not plain.waived
    shadow = tsos_rules.check(SNAPSHOT, config={"rules": {"rollout": {"tsos.*": "shadow"}}})
    assert not shadow.blocking
    assert {shadow.status(f) for f in shadow} == {"shadow"}
    assert len(shadow) == len(plain)  # listed, never dropped
    waived = dict(SNAPSHOT, exemptions=[{"record_type": "opportunity", "record_id": "o1",
                                         "until": "2026-11-24"}])  # fmt: skip
    exempt = tsos_rules.check(waived)
    assert not exempt.blocking
    assert exempt.to_dict()["summary"]["exempt"] == len(plain)
