"""Admins' own declarative packs, loaded from a directory named in the config file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tsos_rules import ConfigError, InputError, check
from tsos_rules.config import load_config
from tsos_rules.engine import Engine

PACKS = Path(__file__).parents[1] / "data" / "packs"
pytestmark = pytest.mark.usefixtures("isolated_env")

STALLED = {
    "as_of": "2026-11-24",
    "opportunities": [
        {"id": "o1", "name": "Old deal", "stage_changed_at": "2026-06-01T09:00:00+00:00"},
        {"id": "o2", "name": "Fresh deal", "stage_changed_at": "2026-11-20T09:00:00+00:00"},
    ],
}


def _config(tmp_path: Path, pack_dir: str) -> Path:
    path = tmp_path / "tsos-rules.toml"
    path.write_text(f'[rules]\npack_dirs = ["{pack_dir}"]\n', encoding="utf-8")
    return path


def test_a_pack_in_the_configured_directory_is_loaded_and_fires(tmp_path: Path) -> None:
    (tmp_path / "packs").mkdir()
    shutil.copy(PACKS / "hygiene.yaml", tmp_path / "packs" / "hygiene.yaml")
    config = load_config(_config(tmp_path, "packs"))  # relative to the config file

    engine = Engine.from_config(config)
    assert "hygiene.stalled-deal" in engine.specs
    stalled = check(STALLED, config=config).for_rule("hygiene.stalled-deal")
    assert [f.record_id for f in stalled] == ["o1"]


def test_a_broken_pack_is_refused_naming_the_file_rule_and_key(tmp_path: Path) -> None:
    (tmp_path / "packs").mkdir()
    shutil.copy(PACKS / "unknown-operator.yaml", tmp_path / "packs" / "mine.yaml")
    with pytest.raises(InputError) as caught:
        Engine.from_config(load_config(_config(tmp_path, "packs")))
    message = str(caught.value)
    assert "mine.yaml" in message and "hygiene.stalled-deal" in message and "gtx" in message


def test_a_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rules\.pack_dirs"):
        Engine.from_config(load_config(_config(tmp_path, "nowhere")))
