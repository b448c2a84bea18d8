"""Pack parameters declare the range an override must lie in; errors name packs.<pack>.<name>."""

from __future__ import annotations

import math

import pytest

from tsos_rules.errors import ConfigError, PackValidationError
from tsos_rules.packs.tsos import TSOS_PACK
from tsos_rules.rules.spec import Parameter, RulePack


def test_the_tsos_pack_refuses_out_of_range_overrides() -> None:
    assert TSOS_PACK.resolve_parameters({"slip_count": 1})["slip_count"] == 1
    for name, value, message in [
        ("slip_count", -3, "packs.tsos.slip_count: expected 1 to 1,000, got -3"),
        ("slip_count", 0, "packs.tsos.slip_count: expected 1 to 1,000, got 0"),
        ("probability_tolerance", 10**20, "packs.tsos.probability_tolerance: expected 0 to 100"),
        ("followup_business_days", -1, "packs.tsos.followup_business_days: expected 0 to 365"),
    ]:
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            TSOS_PACK.resolve_parameters({name: value})


def test_every_tsos_parameter_has_a_range_holding_its_default() -> None:
    for parameter in TSOS_PACK.parameters:
        assert parameter.low is not None and parameter.high is not None, parameter.name
        assert not parameter.out_of_range(parameter.default)


def test_one_sided_ranges_and_floats() -> None:
    ratio = Parameter("ratio", 0.5, "A share.", low=0.0)
    assert ratio.coerce(2, pack="p") == 2.0
    with pytest.raises(ConfigError, match=r"packs\.p\.ratio: expected >= 0\.0, got -1"):
        ratio.coerce(-1, pack="p")
    with pytest.raises(ConfigError, match=r"packs\.p\.ratio: expected >= 0\.0, got nan"):
        ratio.coerce(math.nan, pack="p")
    assert Parameter("free", 1, "No range.").coerce(-(10**30), pack="p") == -(10**30)


def test_a_default_outside_its_range_fails_validation() -> None:
    pack = RulePack(
        name="acme",
        version="1",
        description="A pack.",
        parameters=(Parameter("n", 0, "A count.", low=1),),
    )
    with pytest.raises(PackValidationError, match="parameter n: the default 0 is outside >= 1"):
        pack.validate()
