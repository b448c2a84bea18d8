"""One table of exit codes: the numbers scripts rely on, and the lines the sync summary prints."""

from __future__ import annotations

import io

from tsos_rules.errors import ExitCode
from tsos_rules.report.summary import EXIT_MEANINGS, render_summary
from tsos_rules.sync.job import SyncSummary


def test_the_numbers_never_change() -> None:
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0,
        "BLOCK": 1,
        "INPUT": 2,
        "CONNECTOR": 3,
        "INTERNAL": 4,
        "SKIPPED": 5,
        "LOCKED": 6,
    }


def test_every_code_is_documented_and_the_summary_reads_that_text() -> None:
    assert all(code.meaning and code.__doc__ == code.meaning for code in ExitCode)
    assert {int(code): code.meaning for code in ExitCode} == EXIT_MEANINGS
    assert EXIT_MEANINGS[6] == "another sync run holds the lock: nothing was done"


def test_the_sync_summary_ends_with_the_code_and_its_meaning() -> None:
    summary = SyncSummary(exit_code=ExitCode.SKIPPED).to_dict()
    out = io.StringIO()
    render_summary(summary, stream=out, color=False)
    last = out.getvalue().rstrip().splitlines()[-1]
    assert last == "exit 5: some records could not be read and were skipped"
