"""Small things a newcomer trips on: ``-V``, and ``explain`` showing whole values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tsos_rules.org import OrgProfile


def test_dash_v_prints_the_version_like_dash_dash_version(cli: Callable[..., Any]) -> None:
    short, long = cli("-V"), cli("--version")
    assert short.code == long.code == 0
    assert short.out == long.out
    assert short.out.startswith("tsos-rules, version ")


def test_explain_prints_the_whole_stage_ladder(cli: Callable[..., Any]) -> None:
    result = cli("explain", "tsos.stage-probability-consistent")
    assert result.code == 0
    flat = " ".join(result.out.split())
    for stage, _probability in OrgProfile().stage_ladder:
        assert repr(stage) in flat
    assert "..." not in result.out
