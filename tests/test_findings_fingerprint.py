"""A finding's fingerprint is the key of its state row and of its CRM task: it must never change
across versions (state files and tasks written by earlier versions must still match), and
computing it once per finding must not let a copy keep another finding's value."""

from __future__ import annotations

import pickle

import attrs

from tsos_rules.findings import Finding, Severity

#: Written by every version so far; a state file stores exactly these values.
PINNED = {
    "o000042": "12685707c5cfda893d01debda188c1c8",
    "o000043": "419ca3e6716cd8deb340485add2f0583",
}


def _finding(record_id: str, message: str = "moved") -> Finding:
    return Finding(
        rule="tsos.close-date-locked",
        severity=Severity.WARN,
        record_type="opportunity",
        record_id=record_id,
        reason="moved_unapproved",
        message=message,
        doctrine="Close dates are locked.",
    )


def test_fingerprint_is_the_one_earlier_versions_stored() -> None:
    for record_id, expected in PINNED.items():
        finding = _finding(record_id)
        assert finding.fingerprint == expected
        assert finding.fingerprint == expected  # the second read answers the same


def test_fingerprint_ignores_message_and_follows_the_identity() -> None:
    first = _finding("o000042")
    assert first.fingerprint == PINNED["o000042"]
    assert _finding("o000042", message="other words").fingerprint == PINNED["o000042"]
    moved = attrs.evolve(first, record_id="o000043")
    assert moved.fingerprint == PINNED["o000043"]


def test_fingerprint_of_a_pickled_finding() -> None:
    first = _finding("o000042")
    assert first.fingerprint == PINNED["o000042"]
    copy = pickle.loads(pickle.dumps(first))
    assert copy == first
    assert copy.fingerprint == PINNED["o000042"]
    assert pickle.dumps(first) == pickle.dumps(_finding("o000042"))  # the cache is not shipped
