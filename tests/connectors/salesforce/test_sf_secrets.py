"""No secret reaches a log line or an error message, whatever goes wrong."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from sf_scenario import seed
from sf_support import NOW, Org

from tsos_rules.connectors.base import Action, ActionKind
from tsos_rules.errors import TsosRulesError
from tsos_rules.testing.fake_salesforce import make_rsa_key

PASSWORD = "correct-horse-battery"
TOKEN = "SecTok3nXYZ987"
CONSUMER_SECRET = "9F8E7D6C5B4A-consumer-secret"


def test_no_secret_in_logs_or_errors(
    org: Org, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = org.fake
    ids = seed(fake)
    errors: list[str] = []

    def attempt(*, auth: dict[str, object] | None = None, **overrides: object) -> None:
        try:
            connector = org.connector(auth=auth, **overrides)
            read = connector.read(None, until=NOW)
            fake.expire_sessions()  # a re-login in the middle of the writes
            connector.write(
                [
                    Action(ActionKind.CREATE_TASK, "e" * 32, "opportunity", ids.boeing_fleet),
                    Action(
                        ActionKind.UPDATE_FIELDS,
                        "d" * 32,
                        "opportunity",
                        ids.boeing_fleet,
                        changes={"close_date": dt.date(2026, 12, 15)},
                        expected_version=read.versions[("opportunity", ids.boeing_fleet)],
                    ),
                ]
            )
        except TsosRulesError as exc:
            errors.append(str(exc))

    attempt()  # JWT, all good
    fake.fail("query", status=503, times=10)
    attempt(retry={"max_retries": 1})  # gives up
    fake.faults.clear()
    wrong, _ = make_rsa_key()
    wrong_file = tmp_path / "wrong.key"
    wrong_file.write_text(wrong)
    attempt(auth={**org.table()["auth"], "private_key": {"file": str(wrong_file)}})
    fake.set_password(org.creds.username, PASSWORD + TOKEN)
    monkeypatch.setenv("SF_PASSWORD", PASSWORD)
    monkeypatch.setenv("SF_TOKEN", TOKEN)
    password = {
        "flow": "password",
        "username": org.creds.username,
        "password": {"env": "SF_PASSWORD"},
        "security_token": {"env": "SF_TOKEN"},
    }
    attempt(auth=password)
    fake.set_password(org.creds.username, "something else")
    attempt(auth=password)
    fake.connected_app("3MVGcc", consumer_secret=CONSUMER_SECRET + "!", run_as=org.creds.user_id)
    monkeypatch.setenv("SF_SECRET", CONSUMER_SECRET)
    attempt(
        auth={
            "flow": "client_credentials",
            "consumer_key": "3MVGcc",
            "consumer_secret": {"env": "SF_SECRET"},
        },
        my_domain="acme.my.salesforce.com",
    )
    fake.refuse_sessions = True
    attempt()

    assert len(errors) == 5, errors  # 503s, wrong key, wrong password, wrong secret, refused
    text = caplog.text + "\n".join(errors)
    assert "logged in to Salesforce" in caplog.text  # the log did capture the runs
    secrets = [PASSWORD, TOKEN, CONSUMER_SECRET, *fake.issued]
    key_lines = [
        line
        for pem in (org.creds.private_key_pem, wrong)
        for line in pem.splitlines()
        if len(line) > 20
    ]
    assert fake.issued and key_lines
    for secret in secrets + key_lines:
        assert secret not in text
