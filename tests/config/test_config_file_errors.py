"""Bad config files are input errors (exit 2) naming the file, table and key, never an internal
error (issue 14, item 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tsos_rules.cli import main
from tsos_rules.config import load_config
from tsos_rules.errors import ConfigError, ExitCode

pytestmark = pytest.mark.usefixtures("isolated_env")


def _sync(config: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["sync", "-q", "--config", str(config)])
    return result.exit_code, result.output


def test_a_config_file_that_is_not_utf8_is_exit_2_naming_the_file(tmp_path: Path) -> None:
    config = tmp_path / "tsos.toml"
    config.write_bytes(b'[sync]\nmode = "annotate"\n# caf\xe9\n')
    with pytest.raises(ConfigError, match=r"tsos\.toml: not UTF-8 text \(byte 0xe9 at offset 30\)"):
        load_config(config)
    code, output = _sync(config)
    assert code == ExitCode.INPUT and "tsos.toml: not UTF-8" in output
    assert "internal error" not in output


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    config = tmp_path / "bom.toml"
    config.write_bytes(b'\xef\xbb\xbf[sync]\nmode = "report"\n')
    assert load_config(config).sync["mode"] == "report"


def test_a_device_is_not_read_as_a_config_file() -> None:
    # (/dev/zero would be read forever: a device is refused before anything is read)
    with pytest.raises(ConfigError, match=r"^/dev/null: not a regular file"):
        load_config("/dev/null")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[org]\nfiscal_year_start_month = 13\n", "org.fiscal_year_start_month: expected 1 to 12"),
        ("[org]\nfiscal_year_start_month = -5\n", "org.fiscal_year_start_month: expected 1 to 12"),
        ("[sync]\nbatch_size = 1e20\n", "sync.batch_size: expected a whole number"),
        ("[packs.tsos]\nslip_count = -3\n", "packs.tsos.slip_count: expected 1 to 1,000, got -3"),
        (
            "[packs.tsos]\nprobability_tolerance = 1000\n",
            "packs.tsos.probability_tolerance: expected 0 to 100, got 1000",
        ),
    ],
)
def test_out_of_range_values_are_exit_2_naming_file_table_and_key(
    tmp_path: Path, toml: str, message: str
) -> None:
    config = tmp_path / "range.toml"
    config.write_text(toml)
    code, output = _sync(config)
    assert code == ExitCode.INPUT, output
    assert f"range.toml: {message}" in output
