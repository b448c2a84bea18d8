"""The built-in doctrine pack as a whole: each rule beside its checks, the old import path."""

from __future__ import annotations

import importlib
import sys

import pytest

from tsos_rules.packs import tsos


def test_each_rule_sits_in_the_module_of_its_checks() -> None:
    for rule in tsos.RULES:
        modules = {check.__module__ for check in rule.checks.values()}
        assert len(modules) == 1, rule.spec.id
        (name,) = modules
        assert name.startswith("tsos_rules.packs.tsos."), rule.spec.id
        module = importlib.import_module(name)
        assert any(value is rule for value in vars(module).values()), rule.spec.id


def test_the_pack_holds_every_rule_once_in_the_listed_order() -> None:
    ids = [spec.id for spec in tsos.TSOS_PACK.specs]
    assert ids == [
        "tsos.channel-lead-not-direct",
        "tsos.direct-rep-on-channel-deal",
        "tsos.partner-of-record-required",
        "tsos.partner-of-record-drift",
        "tsos.next-step-required",
        "tsos.close-date-locked",
        "tsos.close-date-slipping",
        "tsos.commit-integrity",
        "tsos.stage-probability-consistent",
        "tsos.lead-outcome-recorded",
        "tsos.partner-lead-followup",
        "tsos.lead-single-owner",
        "tsos.partner-told-of-direct-contact",
    ]
    tsos.TSOS_PACK.validate()


def test_the_old_module_path_warns_and_gives_the_same_pack() -> None:
    sys.modules.pop("tsos_rules.rules.tsos_pack", None)
    with pytest.warns(DeprecationWarning, match=r"import from tsos_rules\.packs\.tsos"):
        old = importlib.import_module("tsos_rules.rules.tsos_pack")
    assert old.TSOS_PACK is tsos.TSOS_PACK
    assert old.RULES is tsos.RULES
