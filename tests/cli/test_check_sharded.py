"""``tsos-rules snapshot split`` and ``tsos-rules check DIR``: a sharded snapshot prints the
bytes of its file on every executor, and bad directories are exit 2 naming the file."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.errors import ExitCode
from tsos_rules.plugins import DISABLE_ENV

_BESIDE = Path(sys.executable).with_name("tsos-rules")
SCRIPT = str(_BESIDE) if _BESIDE.exists() else shutil.which("tsos-rules") or "tsos-rules"
#: Contrib plugins on but the two that add report sections: these tests are about findings
#: and errors (the sections have their own tests below).
SECTIONS_OFF = "mutual-operating-period,sell-through"


def run(*args: str | Path, disabled: str = "") -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in (DISABLE_ENV, "TSOS_RULES_CONFIG")}
    if disabled:
        env[DISABLE_ENV] = disabled
    return subprocess.run(
        [SCRIPT, *map(str, args)], capture_output=True, env=env, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def org_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    org = generate_org(opportunities=1500, seed=11, as_of=dt.date(2026, 11, 24))
    path = tmp_path_factory.mktemp("sharded") / "org.json"
    path.write_text(json.dumps(org, default=str))
    return path


def split(org_file: Path, shards: int, out: Path) -> Path:
    result = run("snapshot", "split", org_file, "--shards", shards, "--out", out)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}: {shards} shards".encode() in result.stdout
    return out


@pytest.mark.parametrize("shards", [1, 2, 4, 7])
def test_a_split_directory_prints_the_bytes_of_its_file(
    org_file: Path, tmp_path: Path, shards: int
) -> None:
    directory = split(org_file, shards, tmp_path / "org")
    expected = run("check", org_file, "--format", "json", disabled=SECTIONS_OFF)
    assert expected.returncode == ExitCode.BLOCK, expected.stderr
    assert json.loads(expected.stdout)["findings"]
    for executor in (["--executor", "local"], ["--executor", "processes", "--jobs", "2"]):
        got = run("check", directory, "--format", "json", *executor, disabled=SECTIONS_OFF)
        assert got.returncode == ExitCode.BLOCK, got.stderr
        assert got.stdout == expected.stdout, (shards, executor)


def test_a_dask_cluster_reading_its_own_shards_prints_the_bytes_of_the_file(
    org_file: Path, tmp_path: Path
) -> None:
    """A real LocalCluster of 2 worker processes, each reading the shards it is given."""
    directory = split(org_file, 4, tmp_path / "org")
    expected = run("check", org_file, "--format", "json", disabled=SECTIONS_OFF)
    got = run(
        "check", directory, "--format", "json", "--executor", "dask", "--jobs", "2",
        disabled=SECTIONS_OFF,
    )  # fmt: skip
    assert got.returncode == expected.returncode == ExitCode.BLOCK, got.stderr
    assert got.stdout == expected.stdout


def _sell_through_config(org_file: Path, tmp_path: Path) -> Path:
    """A sell-through report naming 24 accounts with no open deal as big names buying a few
    units (ties in rank, so the merge must keep the findings' order)."""
    org = json.loads(org_file.read_text())
    busy = {d.get("account_id") for d in org["opportunities"] if not d.get("is_closed")}
    names = [a["name"] for a in org["accounts"] if a["id"] not in busy and a.get("name")][:24]
    assert len(names) == 24
    report = tmp_path / "cdw.csv"
    report.write_text(
        "reseller,end_customer,product,units,date\n"
        + "".join(
            f"CDW,{name},TSOS-PRO,{1 + n % 3},2026-10-0{1 + n % 9}\n"
            for n, name in enumerate(names)
        )
    )
    config = tmp_path / "tsos-rules.toml"
    config.write_text(
        f"[packs.sell-through]\nreports = [{json.dumps(str(report))}]\n"
        f"big_names = {json.dumps(names[::2])}\n"
    )
    return config


@pytest.mark.parametrize("shards", [1, 2, 4])
def test_with_report_sections_the_directory_prints_the_bytes_of_its_file(
    org_file: Path, tmp_path: Path, shards: int
) -> None:
    """Every contrib plugin on: the workers return their shards' section rows (the
    mutual-operating-period and sell-through sections have row keys), merged as the file's."""
    config = _sell_through_config(org_file, tmp_path)
    directory = split(org_file, shards, tmp_path / "org")
    for fmt in ("json", "table"):
        expected = run("check", org_file, "--format", fmt, "--include-info", "--config", config)
        got = run(
            "check", directory, "--format", fmt, "--include-info", "--config", config,
            "--executor", "processes", "--jobs", "2",
        )  # fmt: skip
        assert got.returncode == expected.returncode == ExitCode.BLOCK, got.stderr
        assert b"Mutual operating period" in got.stdout
        assert b"Sell-through prospects" in got.stdout
        assert got.stdout == expected.stdout, (shards, fmt)


def test_an_exemption_by_account_or_partner_marks_the_directory_as_the_file(
    org_file: Path, tmp_path: Path
) -> None:
    """Exemptions scoped to an account and to a partner: the workers return their findings'
    accounts and partners, and the same findings are exempt."""
    org = json.loads(org_file.read_text())
    deal = next(d for d in org["opportunities"] if d.get("account_id"))
    partner = next(d["partner_id"] for d in org["opportunities"] if d.get("partner_id"))
    config = tmp_path / "tsos-rules.toml"
    entries = [("account_id", deal["account_id"]), ("partner_id", partner)]
    config.write_text(
        "".join(
            f'[[exemptions]]\nrule = "*"\n{field} = "{value}"\nreason = "in review"\n'
            'approver = "Dana (RVP)"\ncreated = 2026-11-01\nexpires = 2026-12-31\n'
            for field, value in entries
        )
    )
    directory = split(org_file, 4, tmp_path / "org")
    expected = run("check", org_file, "--format", "json", "--config", config)
    assert b'"exempt"' in expected.stdout, expected.stderr
    got = run(
        "check", directory, "--format", "json", "--config", config,
        "--executor", "processes", "--jobs", "2",
    )  # fmt: skip
    assert got.returncode == expected.returncode, got.stderr
    assert got.stdout == expected.stdout


def _fails(directory: Path, *needles: str) -> None:
    for executor in (["--executor", "local"], ["--executor", "processes", "--jobs", "2"]):
        result = run("check", directory, *executor, disabled=SECTIONS_OFF)
        message = result.stderr.decode()
        assert result.returncode == ExitCode.INPUT, (executor, message)
        assert result.stdout == b""
        for needle in needles:
            assert needle in message, (executor, message)
        assert "Traceback" not in message


def test_a_missing_shard_file_is_exit_2_naming_it(org_file: Path, tmp_path: Path) -> None:
    directory = split(org_file, 2, tmp_path / "org")
    (directory / "shard-0001.json").unlink()
    _fails(directory, "shard-0001.json: cannot read")


def test_a_manifest_that_is_not_json_is_exit_2_naming_it(org_file: Path, tmp_path: Path) -> None:
    directory = split(org_file, 2, tmp_path / "org")
    (directory / "manifest.json").write_text('{"format": ')
    _fails(directory, "manifest.json: not valid JSON")


def test_a_shard_with_a_bad_record_is_exit_2_naming_file_record_and_field(
    org_file: Path, tmp_path: Path
) -> None:
    directory = split(org_file, 2, tmp_path / "org")
    shard = directory / "shard-0001.json"
    document = json.loads(shard.read_text())
    bad = document["opportunities"][3]
    bad["amount"] = "lots"
    shard.write_text(json.dumps(document))
    _fails(
        directory, f"shard-0001.json: opportunities[3] (id {bad['id']}): amount: expected a number"
    )


def test_a_company_group_in_two_shards_is_exit_2_naming_it_and_both_files(
    org_file: Path, tmp_path: Path
) -> None:
    """A hand-made directory: one deal moved to the other shard, away from its account."""
    directory = split(org_file, 2, tmp_path / "org")
    first, second = (json.loads((directory / f"shard-000{n}.json").read_text()) for n in (0, 1))
    for shard in (first, second):
        del shard["sharded"]  # positions no longer match: file order instead
    moved = first["opportunities"].pop(0)
    second["opportunities"].append(moved)
    for n, shard in enumerate((first, second)):
        (directory / f"shard-000{n}.json").write_text(json.dumps(shard))
    result = run(
        "check", directory, "--executor", "processes", "--jobs", "2", disabled=SECTIONS_OFF
    )
    message = result.stderr.decode()
    assert result.returncode == ExitCode.INPUT, message
    assert "company group " in message
    assert "is in both shard-0000.json and shard-0001.json" in message
    assert result.stdout == b""
    assert "Traceback" not in message


def test_a_deal_history_in_another_shard_is_exit_2_naming_both(
    org_file: Path, tmp_path: Path
) -> None:
    """A close-date change moved away from its deal: the deal's shard could not judge it."""
    directory = split(org_file, 2, tmp_path / "org")
    first, second = (json.loads((directory / f"shard-000{n}.json").read_text()) for n in (0, 1))
    for shard in (first, second):
        del shard["sharded"]
    moved = first["close_date_changes"].pop(0)
    second["close_date_changes"].append(moved)
    for n, shard in enumerate((first, second)):
        (directory / f"shard-000{n}.json").write_text(json.dumps(shard))
    result = run(
        "check", directory, "--executor", "processes", "--jobs", "2", disabled=SECTIONS_OFF
    )
    message = result.stderr.decode()
    assert result.returncode == ExitCode.INPUT, message
    assert f"opportunity {moved['opportunity_id']} is in shard-0000.json" in message
    assert "records of shard-0001.json read it" in message
    assert "Traceback" not in message


def test_split_refuses_a_directory_that_is_not_empty(org_file: Path, tmp_path: Path) -> None:
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "notes.txt").write_text("mine")
    result = run("snapshot", "split", org_file, "--shards", "2", "--out", tmp_path / "org")
    assert result.returncode == ExitCode.INPUT
    assert b"exists and is not an empty directory" in result.stderr
    assert (tmp_path / "org" / "notes.txt").read_text() == "mine"
