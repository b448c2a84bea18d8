"""The ``tsos-rules`` command: ``check`` (formats, options, exit codes, bad input), ``rules``,
``explain``. Most runs are in-process (``tsos_rules.cli.run``); a few go through the installed
script end to end."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tsos_rules.testing import (
    account,
    activity,
    change,
    channel_account,
    closed_deal,
    consent,
    day,
    deal,
    lead,
    partner,
    snapshot,
)

pytestmark = pytest.mark.usefixtures("isolated_env")

_BESIDE = Path(sys.executable).with_name("tsos-rules")
SCRIPT = str(_BESIDE) if _BESIDE.exists() else shutil.which("tsos-rules") or "tsos-rules"


def clean():
    return snapshot(opportunities=[deal("o1"), closed_deal("o2")], leads=[lead("l1")])


def with_block():
    return snapshot(opportunities=[deal("o1", next_step="TBD")])


def with_warn_only():
    return snapshot(leads=[lead("l1", status="qualified")])


def busy():
    """Findings on several records and rules, of every severity."""
    return snapshot(
        partners=[partner("p1"), partner("p2", status="terminated")],
        accounts=[
            channel_account("a1", name="Boeing"),
            account("a2", name="Halliburton", partner_of_record_id="p2"),
        ],
        leads=[lead("l1", status="qualified"), lead("l2", company="Boeing", owner_id="u2")],
        opportunities=[
            deal(
                "o1",
                name="Boeing fleet renewal with an exceptionally long and descriptive deal name "
                "that goes on and on",
                account_id="a1",
                partner_id="p1",
                owner_id="d1",
                partner_consent=consent(),
                next_step="TBD",
                probability=75,
            ),
            deal("o2", close_date=None, stage="trial_close", probability=65),
            closed_deal("o3", account_id="a2", partner_id="p2", channel="partner"),
        ],
        close_date_changes=[change("o2", stage="trial_close")],
        activities=[activity("t1", account_id="a1", owner_id="d1")],
    )


# -- exit codes ----------------------------------------------------------------------------


def test_exit_0_without_findings(cli, write_json):
    result = cli("check", write_json(clean()))
    assert result.code == 0
    assert result.err == ""
    assert result.out.strip().endswith("0 finding(s) on 7 record(s): 0 block, 0 warn, 0 info")


def test_exit_0_when_only_warnings(cli, write_json):
    result = cli("check", write_json(with_warn_only()))
    assert result.code == 0
    assert "tsos.lead-outcome-recorded" in result.out


def test_exit_1_with_a_block_finding(cli, write_json):
    result = cli("check", write_json(with_block()))
    assert result.code == 1
    assert "BLOCK  tsos.next-step-required  (placeholder)" in result.out


def test_info_findings_never_fail_the_run(cli, write_json):
    snap = snapshot(
        accounts=[channel_account()],
        opportunities=[
            deal(account_id="a1", partner_id="p1", owner_id="d1", partner_consent=consent())
        ],
    )
    name = write_json(snap)
    assert cli("check", name).code == 0
    shown = cli("check", name, "--include-info", "--format", "json")
    assert shown.code == 0
    assert [(f["reason"], f["severity"]) for f in shown.json()["findings"]] == [
        ("direct_owner_with_consent", "info")
    ]
    assert "direct_owner_with_consent" not in cli("check", name, "--format", "json").out


# -- JSON output ---------------------------------------------------------------------------


def test_json_output_shape_and_order(cli, write_json):
    result = cli("check", write_json(busy()), "--format", "json")
    assert result.code == 1
    document = result.json()
    assert set(document) == {"findings", "summary"}
    items = document["findings"]
    order = [(f["record_type"], f["record_id"], f["rule"]) for f in items]
    assert order == sorted(order)
    identities = [(f["rule"], f["record_type"], f["record_id"], f["reason"]) for f in items]
    assert len(identities) == len(set(identities))
    assert document["summary"]["findings"] == len(items)
    assert document["summary"]["by_severity"]["block"] == sum(
        1 for f in items if f["severity"] == "block"
    )
    assert {f["record_type"] for f in items} == {"account", "activity", "lead", "opportunity"}


def test_as_of_option_overrides_the_snapshot_date(cli, write_json):
    name = write_json(snapshot(opportunities=[deal(next_step_date=day(2))]))
    assert cli("check", name, "--format", "json").json()["findings"] == []
    later = cli("check", name, "--format", "json", "--as-of", day(3))
    assert later.code == 1
    assert [(f["rule"], f["reason"]) for f in later.json()["findings"]] == [
        ("tsos.next-step-required", "past_due")
    ]


def test_a_bad_as_of_is_a_usage_error(cli, write_json):
    result = cli("check", write_json(clean()), "--as-of", "2026-13-01")
    assert result.code == 2
    assert "expected a date YYYY-MM-DD, got '2026-13-01'" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("patterns", "rules"),
    [
        ("tsos.close-*", {"tsos.close-date-locked", "tsos.close-date-slipping"}),
        ("tsos.next-step-required", {"tsos.next-step-required"}),
        (
            "tsos.next-step-*,tsos.close-date-l*",
            {"tsos.next-step-required", "tsos.close-date-locked"},
        ),
        ("*-of-record-*", {"tsos.partner-of-record-required", "tsos.partner-of-record-drift"}),
    ],
)
def test_rules_globs_select_rules(cli, write_json, patterns, rules):
    snap = snapshot(
        partners=[partner("p1"), partner("p2")],
        accounts=[account("a1", partner_of_record_id=None), channel_account("a2", name="Other")],
        opportunities=[
            deal("o1", next_step=None, close_date=None),
            deal("o2", stage="closing", probability=80),
            deal("o3", account_id="a1", channel="partner", partner_id=None),
            deal("o4", account_id="a2", partner_id="p2"),
        ],
        close_date_changes=[change("o2", stage="closing") for _ in range(3)],
    )
    result = cli("check", write_json(snap), "--format", "json", "--rules", patterns)
    assert {f["rule"] for f in result.json()["findings"]} == rules


def test_rules_selecting_only_warnings_exits_0(cli, write_json):
    snap = snapshot(opportunities=[deal(next_step="TBD", stage="closing", probability=10)])
    result = cli("check", write_json(snap), "--rules", "tsos.stage-*")
    assert result.code == 0
    assert "tsos.next-step-required" not in result.out


def test_rules_glob_matching_nothing(cli, write_json):
    result = cli("check", write_json(clean()), "--rules", "tsos.nope*")
    assert (result.code, result.out) == (2, "")
    assert result.err == "tsos-rules: --rules tsos.nope*: matches no loaded rule\n"


def test_config_file_parameters_apply_and_bad_ones_are_named(cli, write_json, tmp_path):
    name = write_json(snapshot(opportunities=[deal()], close_date_changes=[change()]))
    good = tmp_path / "good.toml"
    good.write_text("[packs.tsos]\nslip_count = 1\n")
    result = cli("check", name, "--format", "json", "--config", str(good))
    assert [f["rule"] for f in result.json()["findings"]] == ["tsos.close-date-slipping"]
    bad = tmp_path / "bad.toml"
    bad.write_text("[packs.tsos]\nslip_counts = 1\n")
    result = cli("check", name, "--config", str(bad))
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "packs.tsos: unknown parameter 'slip_counts'" in result.err


# -- bad input: one line naming file, record and field, exit 2, no traceback ----------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"opportunities": [deal("o1"), deal("o2"), deal("o3"), deal("o77", close_date=12345)]},
            "snapshot.json: opportunities[3] (id o77): close_date: "
            "expected a date YYYY-MM-DD, got 12345",
        ),
        (
            {"users": [{"id": "u1", "role": "boss"}]},
            "snapshot.json: users[0] (id u1): role: "
            "expected one of direct, channel, partner, other, got 'boss'",
        ),
        (
            {"opportunities": [deal("o1", forecast_category="Commit")]},
            "snapshot.json: opportunities[0] (id o1): forecast_category: "
            "expected one of pipeline, best_case, commit, closed, omitted, got 'Commit'",
        ),
        (
            {"leads": [lead("l1"), {"company": "Acme"}]},
            "snapshot.json: leads[1]: id: required field is missing",
        ),
        (
            {"opportunities": [deal("o1", probability="80%")]},
            "snapshot.json: opportunities[0] (id o1): probability: expected a number, got '80%'",
        ),
        (
            {"activities": {"t1": activity("t1")}},
            "snapshot.json: activities: expected a list, got {",
        ),
        ("[1, 2, 3]", "snapshot.json: expected a JSON object at the top level, got [1, 2, 3]"),
        (
            '{"users": [}',
            "snapshot.json: not valid JSON: unexpected character, expected a JSON value "
            "at line 1 column 12",
        ),
        ("", "snapshot.json: not valid JSON: Input is a zero-length, empty document"),
    ],
    ids=[
        "contract-example",
        "bad-role",
        "bad-forecast",
        "missing-id",
        "wrong-type",
        "non-list",
        "top-level-array",
        "malformed",
        "empty",
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, write_json, document, message):
    result = cli("check", write_json(document), "--format", "json")
    assert result.code == 2
    assert result.out == ""
    assert result.err.startswith(f"tsos-rules: {message}")
    assert result.err.count("\n") == 1
    assert "Traceback" not in result.err


def test_the_contract_example_error_verbatim(cli, write_json):
    document = {
        "opportunities": [deal("o1"), deal("o2"), deal("o3"), deal("o77", close_date=12345)]
    }
    result = cli("check", write_json(document))
    assert result.err == (
        "tsos-rules: snapshot.json: opportunities[3] (id o77): close_date: "
        "expected a date YYYY-MM-DD, got 12345\n"
    )


def test_a_missing_file(cli, write_json):
    write_json(clean())
    result = cli("check", "nope.json")
    assert result.code == 2
    assert result.err == "tsos-rules: nope.json: cannot read: No such file or directory\n"


def test_a_file_that_is_not_utf8(cli, write_json, tmp_path):
    write_json(clean())
    (tmp_path / "latin1.json").write_bytes(b'{"accounts": [{"id": "a1", "name": "Soci\xe9t\xe9"}]}')
    result = cli("check", "latin1.json")
    assert result.code == 2
    assert result.err.startswith("tsos-rules: latin1.json: not UTF-8 text")


def test_a_device_exits_2_at_once(cli, write_json):
    write_json(clean())
    result = cli("check", "/dev/zero")
    assert result.code == 2
    assert result.err == "tsos-rules: /dev/zero: not a regular file (a device or socket)\n"


def test_a_file_with_a_byte_order_mark_is_read(cli, write_json, tmp_path):
    write_json(clean())
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(clean()).encode())
    assert cli("check", "bom.json").code == 0


def test_a_duplicate_id_exits_2_naming_it(cli, write_json):
    snap = clean()
    snap["opportunities"].append(dict(snap["opportunities"][0]))
    result = cli("check", write_json(snap))
    assert result.code == 2
    assert "duplicate id: also at opportunities[0]" in result.err


def test_unknown_keys_are_not_an_error(cli, write_json):
    snap = clean()
    snap["crm"] = "salesforce"
    snap["opportunities"][0]["sfdc_stage_name"] = "Negotiation/Review"
    assert cli("check", write_json(snap)).code == 0


def test_an_unknown_stage_is_a_finding_not_bad_input(cli, write_json):
    result = cli(
        "check", write_json(snapshot(opportunities=[deal(stage="negotiation")])), "--format", "json"
    )
    assert result.code == 0
    assert [(f["rule"], f["reason"]) for f in result.json()["findings"]] == [
        ("tsos.stage-probability-consistent", "unknown_stage")
    ]


# -- the table -----------------------------------------------------------------------------


def test_the_table_fits_80_columns_and_groups_findings_by_record(cli, write_json):
    name = write_json(busy())
    table = cli("check", name, "--include-info")
    assert table.code == 1
    lines = table.out.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    records = [line for line in lines if line and not line.startswith(" ")][:-1]
    findings = cli("check", name, "--include-info", "--format", "json").json()["findings"]
    expected_records = []
    for f in findings:
        header = f"{f['record_type']} {f['record_id']}"
        if header not in expected_records:
            expected_records.append(header)
    assert records == expected_records  # one header per record, in report order
    # Each finding sits under its record's header.
    current = None
    seen = []
    for line in lines:
        if line in expected_records:
            current = line
        elif line.startswith("  ") and not line.startswith("   "):
            label, rule, reason = line.split()
            seen.append((current, rule, reason.strip("()"), label))
    assert seen == [
        (
            f"{f['record_type']} {f['record_id']}",
            f["rule"],
            f["reason"],
            {"block": "BLOCK", "warn": "warn", "info": "info"}[f["severity"]],
        )
        for f in findings
    ]
    summary = lines[-1]
    counts = {s: sum(1 for f in findings if f["severity"] == s) for s in ("block", "warn", "info")}
    assert summary == (
        f"{len(findings)} finding(s) on 13 record(s): "
        f"{counts['block']} block, {counts['warn']} warn, {counts['info']} info"
    )


def test_the_table_shows_every_message_in_full(cli, write_json):
    name = write_json(busy())
    table = cli("check", name).out
    flowing = " ".join(line.strip() for line in table.splitlines())
    for f in cli("check", name, "--format", "json").json()["findings"]:
        assert f["message"] in flowing


# -- rules and explain ---------------------------------------------------------------------


ALL_RULES = {
    "tsos.channel-lead-not-direct": "block",
    "tsos.direct-rep-on-channel-deal": "warn",
    "tsos.partner-of-record-required": "block",
    "tsos.partner-of-record-drift": "warn",
    "tsos.next-step-required": "block",
    "tsos.close-date-locked": "block",
    "tsos.close-date-slipping": "warn",
    "tsos.commit-integrity": "block",
    "tsos.stage-probability-consistent": "warn",
    "tsos.lead-outcome-recorded": "warn",
    "tsos.partner-lead-followup": "warn",
    "tsos.lead-single-owner": "warn",
    "tsos.partner-told-of-direct-contact": "warn",
}


def test_rules_lists_every_rule_with_its_severity(cli):
    result = cli("rules")
    assert result.code == 0
    listed = {
        line.split()[0]: line.split()[1]
        for line in result.out.splitlines()
        if line.startswith("tsos.")
    }
    assert listed == ALL_RULES
    assert "13 rule(s)" in result.out


def test_rules_as_json(cli):
    result = cli("rules", "--format", "json")
    rows = json.loads(result.out)
    assert {row["id"]: row["severity"] for row in rows} == ALL_RULES
    assert {row["pack"] for row in rows} == {"tsos"}
    by_id = {row["id"]: row for row in rows}
    assert by_id["tsos.channel-lead-not-direct"]["doctrine"] == (
        "When can you take a channel lead direct? NEVER."
    )


def test_rules_table_shows_pack_and_doctrine(cli):
    out = cli("rules").out.splitlines()
    at = next(i for i, line in enumerate(out) if line.startswith("tsos.channel-lead-not-direct "))
    assert out[at].split()[1:] == ["block", "tsos"]
    assert "NEVER" in out[at + 1]
    assert all(len(line) <= 80 for line in out)


def test_explain_prints_doctrine_reasons_and_parameters(cli):
    result = cli("explain", "tsos.close-date-slipping")
    assert result.code == 0
    assert "tsos.close-date-slipping" in result.out
    assert "severity: warn" in result.out and "pack: tsos" in result.out
    assert "DO NOT MISS YOUR COMMIT ever." in result.out
    assert "pushed_repeatedly" in result.out
    assert "slip_count = 3 (default 3)" in result.out


def test_explain_lists_every_reason_of_a_rule(cli):
    out = cli("explain", "tsos.next-step-required").out
    for reason in ("placeholder", "missing", "past_due"):
        assert f"  {reason}: " in out


def test_explain_shows_the_configured_value(cli, tmp_path):
    config = tmp_path / "tsos.toml"
    config.write_text("[packs.tsos]\nprobability_tolerance = 5\n")
    out = cli("explain", "tsos.stage-probability-consistent", "--config", str(config)).out
    assert "probability_tolerance = 5 (default 10)" in out


def test_explain_an_unknown_rule(cli):
    result = cli("explain", "tsos.no-such-rule")
    assert result.code == 2
    assert result.err.startswith("tsos-rules: tsos.no-such-rule: no such rule")
    hinted = cli("explain", "next-step-required")
    assert "did you mean tsos.next-step-required?" in hinted.err


# -- end to end through the installed script -----------------------------------------------


def script(*args, stdin=None, cwd=None):
    return subprocess.run(
        [SCRIPT, *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_script_check_exits_1_on_a_block_and_writes_json(tmp_path):
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(with_block()))
    result = script("check", str(path), "--format", "json")
    assert result.returncode == 1
    assert [f["reason"] for f in json.loads(result.stdout)["findings"]] == ["placeholder"]


def test_script_reads_stdin(tmp_path):
    result = script(
        "check",
        "-",
        "--format",
        "json",
        "--rules",
        "tsos.lead-*",
        stdin=json.dumps(with_warn_only()),
    )
    assert result.returncode == 0, result.stderr
    assert [f["rule"] for f in json.loads(result.stdout)["findings"]] == [
        "tsos.lead-outcome-recorded"
    ]


def test_script_bad_input_is_one_line_without_traceback(tmp_path):
    (tmp_path / "snapshot.json").write_text(
        json.dumps(
            {"opportunities": [deal("o1"), deal("o2"), deal("o3"), deal("o77", close_date=12345)]}
        )
    )
    result = script("check", "snapshot.json", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "tsos-rules: snapshot.json: opportunities[3] (id o77): close_date: "
        "expected a date YYYY-MM-DD, got 12345\n"
    )


def test_absurdly_nested_json_is_bad_input_not_an_internal_error(cli, write_json):
    result = cli("check", write_json('{"x": ' + "[" * 100_000 + "]" * 100_000 + "}"))
    assert result.code == 2
    assert result.err.startswith("tsos-rules: snapshot.json: ")


def test_check_help_shows_examples(cli):
    result = cli("check", "--help")
    assert result.code == 0
    assert "Examples:" in result.out
    assert "tsos-rules check snapshot.json --format json --as-of 2026-11-24" in result.out


def test_explain_shows_the_org_settings_a_rule_reads(cli):
    out = cli("explain", "tsos.close-date-locked").out
    assert "Org settings it reads (config: [org]):" in out
    assert "lock_stage = 'date_locked'" in out


def test_script_judges_a_large_snapshot_in_workers_with_the_same_findings(tmp_path):
    """Past 20k judged records ``check`` forks workers; output and exit code are unchanged."""
    from tsos_rules.connectors.local.demo import generate_org

    org = generate_org(opportunities=6000, seed=2, as_of=dt.date(2026, 11, 24))
    path = tmp_path / "big.json"
    path.write_text(json.dumps(org, default=str))
    alone = script("check", str(path), "--format", "json", "--jobs", "1")
    workers = script("check", str(path), "--format", "json", "--jobs", "2")
    assert alone.returncode == workers.returncode == 1
    document = json.loads(workers.stdout)
    assert document["summary"]["records"] > 20_000
    assert workers.stdout == alone.stdout
    table = script("check", str(path), "--jobs", "2")
    assert table.stdout.rstrip().endswith(document_summary_line(document))


def document_summary_line(document):
    summary = document["summary"]
    severity = summary["by_severity"]
    return (
        f"{summary['findings']} finding(s) on {summary['records']} record(s): "
        f"{severity['block']} block, {severity['warn']} warn, {severity['info']} info"
    )


def test_check_of_a_file_imports_neither_the_sharded_readers_nor_dask(tmp_path) -> None:
    """Start-up: `check FILE --format json` pays for no module it does not use."""
    import subprocess
    import sys

    path = tmp_path / "snap.json"
    path.write_text('{"as_of": "2026-11-24", "opportunities": [{"id": "o1"}]}')
    code = (
        "import sys\n"
        "from tsos_rules.cli import run\n"
        f"code = run(['check', {str(path)!r}, '--format', 'json', '--executor', 'local'])\n"
        "heavy = ('tsos_rules.snapshot.sharded', 'tsos_rules.engine.sharded', "
        "'tsos_rules.report.table', 'dask', 'distributed')\n"
        "print(code in (0, 1), sorted(m for m in sys.modules if m.startswith(heavy)), "
        "file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip().splitlines()[-1] == "True []"
