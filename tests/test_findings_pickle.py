"""Workers send their findings back as a ``FindingList``, pickled one column a field: what the
driver unpickles must be the very findings the worker made (every field, details included),
whatever their values, and a list holding anything but plain findings pickles as before."""

from __future__ import annotations

import pickle

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from tsos_rules.findings import Finding, FindingList, Severity

_TEXT = st.text(max_size=8)
_DETAILS = st.dictionaries(
    _TEXT, st.none() | st.integers() | st.floats(allow_nan=False) | _TEXT | st.dates(), max_size=3
)
_FINDING = st.builds(
    Finding,
    rule=_TEXT,
    severity=st.sampled_from(list(Severity)),
    record_type=st.sampled_from(["opportunity", "lead", "account"]),
    record_id=_TEXT,
    reason=_TEXT,
    message=_TEXT,
    doctrine=_TEXT,
    details=_DETAILS,
)


@settings(max_examples=200, deadline=None)
@given(findings=st.lists(_FINDING, max_size=20))
def test_a_finding_list_unpickles_to_the_same_findings(findings: list[Finding]) -> None:
    back = pickle.loads(pickle.dumps(FindingList(findings)))
    assert isinstance(back, FindingList)
    assert back == findings
    for got, made in zip(back, findings, strict=True):
        assert got.details == made.details  # not part of a finding's equality
        assert got.severity is made.severity
        assert got.fingerprint == made.fingerprint


def test_it_is_smaller_than_a_finding_at_a_time() -> None:
    findings = [
        Finding("tsos.next-step-required", Severity.WARN, "opportunity", f"o{n:06d}",
                "missing", f"Deal o{n:06d} has no next step", "No deal without a next step.")
        for n in range(1000)
    ]  # fmt: skip
    assert len(pickle.dumps(FindingList(findings))) < len(pickle.dumps(findings))


@attrs.frozen
class _Annotated(Finding):
    note: str = ""


def test_a_list_with_a_finding_subclass_pickles_each_as_itself() -> None:
    plain = Finding("r", Severity.INFO, "lead", "l1", "x", "m", "d")
    odd = _Annotated("r", Severity.BLOCK, "lead", "l2", "x", "m", "d", note="kept")
    back = pickle.loads(pickle.dumps(FindingList([plain, odd])))
    assert back == [plain, odd]
    assert type(back[1]) is _Annotated
    assert back[1].note == "kept"
