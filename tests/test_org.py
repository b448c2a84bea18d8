"""The org profile: stage ladder, placeholders, company names, fiscal quarters, business days."""

from __future__ import annotations

import datetime as dt

import pytest

from tsos_rules.errors import ConfigError
from tsos_rules.org import OrgProfile, company_key, normalise_text

D = dt.date


def test_the_default_ladder_is_the_doctrines():
    org = OrgProfile()
    assert dict(org.stage_ladder) == {
        "mql": 20,
        "business_driver": 40,
        "sql": 40,
        "engagement": 40,
        "single_sales_opportunity": 40,
        "date_locked": 40,
        "draft_proposal": 60,
        "trial_close": 65,
        "closing": 80,
        "commitment": 90,
        "closed_won": 100,
        "closed_lost": 0,
    }
    assert [stage for stage, _ in org.stage_ladder][:3] == ["mql", "business_driver", "sql"]
    assert org.lock_stage == "date_locked"
    assert org.fiscal_year_start_month == 1


@pytest.mark.parametrize(
    ("text", "key"), [("Follow-up.", "followup"), (" N/A ", "na"), ("TBD!", "tbd"), ("?", "")]
)
def test_normalise_text_drops_case_space_and_punctuation(text, key):
    assert normalise_text(text) == key


@pytest.mark.parametrize(
    "text", ["tbd", "TBD.", " n/a ", "None", "-", "?", "--", "follow up", "Follow-Up", "FOLLOWUP"]
)
def test_default_placeholders(text):
    assert OrgProfile().is_placeholder(text)


@pytest.mark.parametrize("text", ["Send pricing", "TBD pricing", "Follow up with legal", "nothing"])
def test_real_next_steps_are_not_placeholders(text):
    assert not OrgProfile().is_placeholder(text)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Acme, Inc.", "ACME"),
        ("Acme Corp.", "acme corporation"),
        ("Acme GmbH", "Acme"),
        ("Smith & Sons", "Smith and Sons"),
        ("  acme  ", "Acme"),
    ],
)
def test_company_names_match_ignoring_case_punctuation_and_legal_suffixes(a, b):
    assert company_key(a) == company_key(b)


@pytest.mark.parametrize(
    ("a", "b"), [("Acme", "Acme Industries"), ("Costco", "Cost"), ("Incognito", "Cognito")]
)
def test_different_companies_stay_different(a, b):
    assert company_key(a) != company_key(b)


# -- fiscal quarters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "day", "end"),
    [
        (1, D(2026, 1, 1), D(2026, 3, 31)),
        (1, D(2026, 3, 31), D(2026, 3, 31)),
        (1, D(2026, 11, 24), D(2026, 12, 31)),
        (2, D(2026, 1, 31), D(2026, 1, 31)),
        (2, D(2026, 2, 1), D(2026, 4, 30)),
        (2, D(2026, 11, 24), D(2027, 1, 31)),
        (2, D(2024, 12, 1), D(2025, 1, 31)),
        (4, D(2026, 3, 15), D(2026, 3, 31)),
        (4, D(2026, 4, 1), D(2026, 6, 30)),
        (7, D(2026, 6, 30), D(2026, 6, 30)),
        (11, D(2026, 12, 10), D(2027, 1, 31)),
        (12, D(2026, 12, 1), D(2027, 2, 28)),
        (12, D(2027, 12, 1), D(2028, 2, 29)),
    ],
)
def test_fiscal_quarter_end(start, day, end):
    assert OrgProfile(fiscal_year_start_month=start).fiscal_quarter_end(day) == end


# -- business days -------------------------------------------------------------------------

FRI, SAT, SUN, MON, TUE = (D(2026, 11, d) for d in (20, 21, 22, 23, 24))


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        (FRI, FRI, 0),
        (FRI, SAT, 0),
        (FRI, SUN, 0),
        (FRI, MON, 1),
        (FRI, TUE, 2),
        (SAT, MON, 1),
        (MON, FRI + dt.timedelta(days=7), 4),
        (MON, FRI + dt.timedelta(days=14), 9),
        (MON, MON + dt.timedelta(days=14), 10),
        (TUE, MON, 0),
    ],
)
def test_business_days_after_start_up_to_end(start, end, days):
    assert OrgProfile().business_days_between(start, end) == days


def test_holidays_on_weekdays_are_not_business_days():
    org = OrgProfile(holidays=(MON, D(2026, 11, 26)))
    assert org.business_days_between(FRI, TUE) == 1
    assert org.business_days_between(FRI, D(2026, 11, 27)) == 3


def test_holidays_on_weekends_and_on_the_start_day_do_not_count():
    org = OrgProfile(holidays=(FRI, SAT, SUN))
    assert org.business_days_between(FRI, TUE) == 2


def test_local_date_uses_the_org_time_zone():
    moment = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.UTC)
    assert OrgProfile().local_date(moment) == FRI
    assert OrgProfile(timezone="America/Los_Angeles").local_date(moment) == D(2026, 11, 19)
    assert OrgProfile(timezone="Asia/Tokyo").local_date(moment) == FRI


# -- configuration -------------------------------------------------------------------------


def test_from_mapping_reads_every_setting():
    org = OrgProfile.from_mapping(
        {
            "stage_ladder": {"lead": 10, "proposal": 50, "won": 100, "lost": 0},
            "lock_stage": "proposal",
            "placeholders": ["pending"],
            "partner_sources": ["var"],
            "fiscal_year_start_month": 2,
            "timezone": "Europe/Berlin",
            "holidays": ["2026-12-25", dt.date(2026, 12, 26)],
        }
    )
    assert org.stage_probability == {"lead": 10, "proposal": 50, "won": 100, "lost": 0}
    assert org.stage_index["proposal"] == 1
    assert org.is_placeholder("Pending.") and not org.is_placeholder("tbd")
    assert org.holidays == (D(2026, 12, 25), D(2026, 12, 26))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"lock_stag": "closing"}, "org.lock_stag: unknown setting"),
        ({"lock_stage": "signed"}, "org.lock_stage: 'signed' is not in org.stage_ladder"),
        ({"fiscal_year_start_month": 13}, "org.fiscal_year_start_month: expected 1 to 12, got 13"),
        ({"fiscal_year_start_month": 0}, "org.fiscal_year_start_month: expected 1 to 12, got 0"),
        ({"fiscal_year_start_month": "2"}, "org.fiscal_year_start_month: expected a whole number"),
        ({"fiscal_year_start_month": True}, "org.fiscal_year_start_month: expected a whole number"),
        ({"timezone": "Mars/Olympus"}, "org.timezone: unknown time zone 'Mars/Olympus'"),
        ({"holidays": ["25/12/2026"]}, "org.holidays: expected a list of dates YYYY-MM-DD"),
        ({"placeholders": "tbd"}, "org.placeholders: expected a list of strings"),
        ({"stage_ladder": ["mql"]}, "org.stage_ladder: expected a table"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_key(settings, message):
    with pytest.raises(ConfigError) as caught:
        OrgProfile.from_mapping(settings)
    assert message in str(caught.value)
