"""``snapshot split`` streams its file: the shards are the bytes the in-memory split writes,
file by file, and a bad file is the error ``load_snapshot`` gives (exit 2 naming the record)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tsos_rules.cli import main
from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.engine.sharding import split_file, split_snapshot
from tsos_rules.errors import ExitCode, SnapshotError
from tsos_rules.snapshot import load_snapshot


def _org(seed: int, deals: int) -> dict[str, Any]:
    org = generate_org(opportunities=deals, seed=seed, as_of=dt.date(2026, 11, 24))
    # what the reference file keeps besides users and partners: unknown keys, CRM exemptions
    org["crm_instance"] = {"name": "acme", "regions": ["emea", "na"]}
    org["exemptions"] = [
        {
            "record_type": "opportunity",
            "record_id": org["opportunities"][0]["id"],
            "until": "2026-12-20",
            "rules": ["tsos.next-step-*"],
            "reason": "buyer on leave",
        }
    ]
    org["opportunities"][1]["custom_score"] = 0.1 + 0.2  # an unknown field, a float
    org["accounts"][0]["name"] = 'Ünïcode Gmbh \u2013 "quoted"'
    return org


def _files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


@pytest.mark.parametrize(("seed", "deals", "shards"), [(3, 40, 1), (11, 600, 3), (5, 900, 7)])
def test_the_streamed_split_writes_the_bytes_of_the_in_memory_split(
    tmp_path: Path, seed: int, deals: int, shards: int
) -> None:
    path = tmp_path / "org.json"
    path.write_text(json.dumps(_org(seed, deals), default=str, ensure_ascii=False, indent=1))
    snapshot, _ = load_snapshot(path)
    expected = _files(split_snapshot(snapshot, shards, tmp_path / "memory").directory)
    manifest, records = split_file(str(path), shards, tmp_path / "streamed")
    assert _files(manifest.directory) == expected
    assert records == snapshot.record_count


@pytest.mark.parametrize("deals", [0, 200])
def test_stdin_and_a_byte_order_mark_split_as_the_file(tmp_path: Path, deals: int) -> None:
    """Piped: copied to a scratch file first (a small document too, under a buffer's size)."""
    path = tmp_path / "org.json"
    org = _org(7, deals) if deals else {"as_of": "2026-11-24", "users": [{"id": "u1"}]}
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(org, default=str).encode())
    expected = _files(split_snapshot(load_snapshot(path)[0], 2, tmp_path / "memory").directory)
    result = CliRunner().invoke(
        main,
        ["snapshot", "split", "-", "--shards", "2", "--out", str(tmp_path / "piped")],
        input=path.read_bytes(),
    )
    assert result.exit_code == 0, result.output
    assert _files(tmp_path / "piped") == expected


def _broken(org: dict[str, Any], how: str) -> dict[str, Any] | list[Any]:
    if how == "bad field":
        org["opportunities"][3]["amount"] = "lots"
    elif how == "duplicate id":
        org["activities"][9]["id"] = org["activities"][2]["id"]
    elif how == "bad field after a duplicate":
        org["leads"][4]["id"] = org["leads"][1]["id"]
        org["leads"][7]["created_at"] = "yesterday"
    elif how == "bad as_of and a bad record":
        org["as_of"] = "soon"
        org["activities"][0]["what_id"] = 12
    elif how == "bad records in two collections":  # the first in a load's order is named
        org["activities"][1]["what_id"] = 12
        org["leads"][5]["created_at"] = "yesterday"
    elif how == "a bad user":
        org["users"][0]["id"] = None
    elif how == "not a list":
        org["close_date_changes"] = {"oops": 1}
    elif how == "not an object":
        return [org]
    return org


@pytest.mark.parametrize(
    "how",
    [
        "bad field",
        "duplicate id",
        "bad field after a duplicate",
        "bad as_of and a bad record",
        "bad records in two collections",
        "a bad user",
        "not a list",
        "not an object",
    ],
)
def test_a_bad_file_is_the_error_a_load_gives_exit_2(tmp_path: Path, how: str) -> None:
    path = tmp_path / "org.json"
    path.write_text(json.dumps(_broken(_org(3, 60), how), default=str))
    with pytest.raises(SnapshotError) as loaded:
        load_snapshot(path)
    result = CliRunner().invoke(
        main, ["snapshot", "split", str(path), "--shards", "2", "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == ExitCode.INPUT, result.output
    assert str(loaded.value) in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text", ['{"accounts": [{"id": "a1"}', '{"as_of": nope}', ""])
def test_a_file_that_is_not_json_is_exit_2_naming_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "org.json"
    path.write_text(text)
    result = CliRunner().invoke(
        main, ["snapshot", "split", str(path), "--shards", "2", "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == ExitCode.INPUT, result.output
    assert f"{path}: not valid JSON" in result.output


def test_a_top_level_key_twice_is_exit_2_never_both_copies_split(tmp_path: Path) -> None:
    """A load keeps the last copy of a key; the streamed passes cannot, so split refuses it."""
    path = tmp_path / "org.json"
    users = [json.dumps({"id": f"u{n}", "name": "U", "email": "u@example.com"}) for n in (1, 2)]
    path.write_text(
        f'{{"as_of": "2026-11-24", "users": [{users[0]}], "users": [{users[1]}], '
        '"opportunities": []}'
    )
    result = CliRunner().invoke(
        main, ["snapshot", "split", str(path), "--shards", "2", "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == ExitCode.INPUT, result.output
    assert "'users' appears twice" in result.output
    assert not (tmp_path / "out").exists()


def test_an_integer_beyond_64_bits_splits_as_the_whole_read_does(tmp_path: Path) -> None:
    """ijson's C backend refuses such an integer; split reads it exactly, as a load does."""
    org = _org(5, 80)
    org["opportunities"][0]["huge"] = 10**30
    org["accounts"][0]["huge"] = -(10**25)
    path = tmp_path / "org.json"
    path.write_text(json.dumps(org, default=str))
    snapshot, _ = load_snapshot(path)
    expected = _files(split_snapshot(snapshot, 2, tmp_path / "memory").directory)
    manifest, _ = split_file(str(path), 2, tmp_path / "streamed")
    assert _files(manifest.directory) == expected
    assert b'"huge":1000000000000000000000000000000' in b"".join(expected.values())
