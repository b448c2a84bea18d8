"""``[[exemptions]]``, ``[rules.rollout]`` and ``[rules] exemption_max_days`` are read by the
one settings reader: each bad entry names the file, the entry and the key."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from tsos_rules.config import load_config
from tsos_rules.errors import ConfigError
from tsos_rules.policy.apply import rollout_policy
from tsos_rules.policy.rollout import Mode

GOOD = """
[[exemptions]]
rule = "tsos.*"
account_id = "001B7"
reason = "merger"
approver = "CFO"
created = 2026-11-01
expires = "2027-04-30"
"""


def _load(tmp_path: Path, text: str):
    path = tmp_path / "tsos.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_a_good_entry_is_read_with_dates(tmp_path: Path) -> None:
    (entry,) = _load(tmp_path, GOOD).exemptions
    assert entry["account_id"] == "001B7" and entry["expires"] == dt.date(2027, 4, 30)
    assert "record_id" not in entry


ACCOUNT = 'account_id = "001B7"\n'
EXPIRES = 'expires = "2027-04-30"'
E1 = "exemptions[1]."


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('rule = "tsos.*"\n', ""), E1 + "rule: required"),
        ((ACCOUNT, ""), E1 + "record_id: give exactly one of"),
        ((ACCOUNT, 'account_id = "a"\npartner_id = "p"\n'), E1 + "partner_id: give exactly"),
        ((ACCOUNT, 'record_id = "o1"\n'), E1 + "record_type: expected one of"),
        ((ACCOUNT, 'account_id = "a"\nrecord_type = "lead"\n'), E1 + "record_type: only with"),
        ((EXPIRES, 'expires = "soon"'), E1 + "expires: expected a date"),
        ((EXPIRES, "expires = 2027-05-01"), E1 + "expires: 2027-05-01 is more than 180 days"),
        ((EXPIRES, "expires = 2026-10-01"), E1 + "expires: 2026-10-01 is before created"),
        (("created = 2026-11-01\n", ""), E1 + "created: required"),
        (('reason = "merger"', 'reason = " "'), E1 + "reason: expected a non-empty string"),
        (('approver = "CFO"', "approver = 3"), E1 + "approver: expected a non-empty string"),
        (('approver = "CFO"', 'approver = "CFO"\nwho = 1'), E1 + "who: unknown setting"),
    ],
)
def test_bad_entries_name_the_entry_and_the_key(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    text = GOOD.replace(*edit)
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        _load(tmp_path, text + GOOD)
    assert str(tmp_path / "tsos.toml") in str(caught.value)


def test_the_second_entry_is_named_by_its_place(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("exemptions[2].approver: required")):
        _load(tmp_path, GOOD + GOOD.replace('approver = "CFO"\n', ""))


def test_the_maximum_is_configurable(tmp_path: Path) -> None:
    longer = "[rules]\nexemption_max_days = 365\n" + GOOD.replace("2027-04-30", "2027-10-01")
    assert _load(tmp_path, longer).exemption_max_days == 365
    with pytest.raises(ConfigError, match=re.escape("rules.exemption_max_days: expected")):
        _load(tmp_path, "[rules]\nexemption_max_days = 0\n")


def test_exemptions_must_be_an_array_of_tables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("exemptions: expected [[exemptions]]")):
        _load(tmp_path, "exemptions = 3\n")


def test_rollout_wins_over_the_deprecated_alias_key_by_key(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        '[sync.rule_modes]\n"tsos.a" = "report"\n"tsos.b" = "shadow"\n'
        '[rules.rollout]\n"tsos.a" = "enforce"\n',
    )
    policy = rollout_policy(config)
    assert policy.mode_for("tsos.a") is Mode.ENFORCE
    assert policy.mode_for("tsos.b") is Mode.SHADOW
    assert policy.sources == {"tsos.b": "sync.rule_modes"}
