"""Logging in: JWT bearer (signature checked by the fake org), client credentials, a session id,
and the legacy password login; sandboxes and My Domain hosts."""

from __future__ import annotations

import logging
import urllib.parse
from pathlib import Path

import pytest
from sf_support import NOW, Org, add_custom_fields

from tsos_rules.connectors.salesforce import SalesforceConnector
from tsos_rules.errors import ConfigError, FatalConnectorError, RetriableConnectorError
from tsos_rules.testing.fake_salesforce import FakeSalesforce, make_rsa_key


def auth_calls(fake: FakeSalesforce) -> list[tuple[str, str]]:
    return [(c.method, c.path) for c in fake.calls if c.kind == "auth"]


def test_jwt_login_signs_for_the_integration_user(org: Org) -> None:
    connector = org.connector()
    connector.read(None, until=NOW)
    (call,) = [c for c in org.fake.calls if c.kind == "auth"]
    form = urllib.parse.parse_qs(call.body)
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assert connector.client.integration_user_id() == org.creds.user_id
    # the integration user's own activities are left out of what it reads
    assert any(f"CreatedById != '{org.creds.user_id}'" in q for q, _ in org.fake.query_log)


def test_a_key_the_app_does_not_know_is_refused_with_a_hint(org: Org, tmp_path: Path) -> None:
    other, _ = make_rsa_key()
    key_file = tmp_path / "other.key"
    key_file.write_text(other)
    connector = org.connector(auth={**org.table()["auth"], "private_key": {"file": str(key_file)}})
    with pytest.raises(FatalConnectorError, match="refused the jwt login: invalid_grant") as info:
        connector.read(None, until=NOW)
    assert "certificate matches the private key" in str(info.value)
    assert "PRIVATE KEY" not in str(info.value)


def test_an_unapproved_user_gets_the_pre_authorize_hint(org: Org) -> None:
    org.fake.apps[org.creds.consumer_key].approved = False
    with pytest.raises(FatalConnectorError, match="Admin approved users are pre-authorized"):
        org.connector().read(None, until=NOW)


def test_sandbox_logins_use_test_salesforce_com(tmp_path: Path, key_pair: tuple[str, str]) -> None:
    fake = FakeSalesforce(
        now=NOW, sandbox=True, instance_url="https://acme--uat.sandbox.my.salesforce.com"
    )
    add_custom_fields(fake)
    with fake.mock():
        creds = fake.setup_jwt(key_pair=key_pair)
        key = tmp_path / "k"
        key.write_text(creds.private_key_pem)
        org = Org(fake, creds, key)
        org.connector(sandbox=True).read(None, until=NOW)
        assert fake.calls[0].kind == "auth" and fake.calls[0].status == 200
        assert fake.calls[1].status == 200
        # a production login host would be refused by a sandbox org
        with pytest.raises(FatalConnectorError, match="invalid_grant"):
            org.connector().read(None, until=NOW)


def test_my_domain_takes_the_token_request(org: Org) -> None:
    org.connector(my_domain="https://acme.my.salesforce.com/").read(None, until=NOW)
    calls = [c for c in org.fake.calls if c.kind == "auth"]
    assert calls and all(c.status == 200 for c in calls)


def test_client_credentials_need_my_domain(org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    org.fake.connected_app("3MVGcc", consumer_secret="s3cr3t-value", run_as=org.creds.user_id)
    monkeypatch.setenv("SF_SECRET", "s3cr3t-value")
    auth = {
        "flow": "client_credentials",
        "consumer_key": "3MVGcc",
        "consumer_secret": {"env": "SF_SECRET"},
    }
    with pytest.raises(ConfigError, match="my_domain: required"):
        org.connector(auth=auth).read(None, until=NOW)
    connector = org.connector(auth=auth, my_domain="acme.my.salesforce.com")
    connector.read(None, until=NOW)
    assert connector.client.integration_user_id() == org.creds.user_id


def test_a_session_id_and_instance_url_need_no_login(
    org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SF_SESSION", org.fake.issue_session(org.creds.user_id))
    auth = {
        "flow": "session",
        "session_id": {"env": "SF_SESSION"},
        "instance_url": "https://acme.my.salesforce.com",
        "integration_user_id": org.creds.user_id,
    }
    connector = org.connector(auth=auth)
    connector.read(None, until=NOW)
    assert org.fake.count("auth") == 0
    assert connector.client.integration_user_id() == org.creds.user_id


def test_password_login_works_but_is_logged_as_deprecated(
    org: Org, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    org.fake.set_password(org.creds.username, "hunter2-passwordTOKEN123")
    monkeypatch.setenv("SF_PASSWORD", "hunter2-password")
    monkeypatch.setenv("SF_TOKEN", "TOKEN123")
    auth = {
        "flow": "password",
        "username": org.creds.username,
        "password": {"env": "SF_PASSWORD"},
        "security_token": {"env": "SF_TOKEN"},
    }
    caplog.set_level(logging.WARNING)
    connector = org.connector(auth=auth)
    connector.read(None, until=NOW)
    assert auth_calls(org.fake) == [("POST", "/services/Soap/u/62.0")]
    assert connector.client.integration_user_id() == org.creds.user_id
    assert "'password' is deprecated" in caplog.text and "flow = 'jwt'" in caplog.text
    monkeypatch.setenv("SF_TOKEN", "WRONG")
    with pytest.raises(FatalConnectorError, match="INVALID_LOGIN"):
        org.connector(auth=auth).read(None, until=NOW)


def test_a_missing_secret_is_a_config_error(org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SF_KEY", raising=False)
    connector = org.connector(auth={**org.table()["auth"], "private_key": {"env": "SF_KEY"}})
    with pytest.raises(
        ConfigError, match=r"connector\.auth\.private_key: environment variable SF_KEY"
    ):
        connector.read(None, until=NOW)


def test_the_hook_registers_the_factory() -> None:
    from tsos_rules.plugins import collect_connectors, get_plugin_manager

    pm = get_plugin_manager(entry_points=False)  # a built-in: registered like any plugin
    factories = collect_connectors(pm)
    with pytest.raises(ConfigError):  # the factory is the connector's own settings check
        factories["salesforce"]({"auth": "no-such-auth"})
    assert factories["salesforce"].__doc__ == SalesforceConnector.__doc__.strip().splitlines()[0]


def test_registering_the_connector_does_not_import_its_http_stack() -> None:
    import subprocess
    import sys

    probe = (
        "import sys; from tsos_rules.plugins import collect_connectors, get_plugin_manager; "
        "collect_connectors(get_plugin_manager(entry_points=False)); "
        "print('simple_salesforce' in sys.modules, 'requests' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_a_sandbox_my_domain_host_signs_for_the_sandbox_audience(
    tmp_path: Path, key_pair: tuple[str, str]
) -> None:
    """With ``sandbox`` unset, a ``*.sandbox.my.salesforce.com`` host still means a sandbox:
    the JWT must name https://test.salesforce.com or the sandbox refuses it."""
    fake = FakeSalesforce(
        now=NOW, sandbox=True, instance_url="https://acme--uat.sandbox.my.salesforce.com"
    )
    add_custom_fields(fake)
    with fake.mock():
        creds = fake.setup_jwt(key_pair=key_pair)
        key = tmp_path / "k"
        key.write_text(creds.private_key_pem)
        org = Org(fake, creds, key)
        org.connector(my_domain="acme--uat.sandbox.my.salesforce.com").read(None, until=NOW)
        (call,) = [c for c in fake.calls if c.kind == "auth"]
        assert call.status == 200
        assertion = urllib.parse.parse_qs(call.body)["assertion"][0]
        import jwt

        claims = jwt.decode(assertion, options={"verify_signature": False})
        assert claims["aud"] == "https://test.salesforce.com"


def test_a_rate_limited_login_is_retried_with_backoff(org: Org) -> None:
    org.fake.fail(
        "auth",
        status=429,
        code="REQUEST_LIMIT_EXCEEDED",
        message="Too many login requests",
        times=2,
        headers={"Retry-After": "3"},
    )
    connector = org.connector()
    result = connector.read(None, until=NOW)
    assert result.snapshot is not None
    assert org.fake.count("auth") == 3
    assert org.sleeps[:2] == [3.0, 3.0]


def test_a_login_that_stays_unavailable_gives_up_after_the_retries(org: Org) -> None:
    org.fake.fail("auth", status=503, times=100)
    connector = org.connector(retry={"max_retries": 2})
    with pytest.raises(
        RetriableConnectorError, match="jwt login failed after 3 attempts: HTTP 503"
    ):
        connector.read(None, until=NOW)
    assert org.fake.count("auth") == 3 and len(org.sleeps) == 2


def test_a_refused_login_is_not_retried(org: Org) -> None:
    org.fake.apps[org.creds.consumer_key].approved = False
    with pytest.raises(FatalConnectorError):
        org.connector().read(None, until=NOW)
    assert org.fake.count("auth") == 1 and org.sleeps == []
