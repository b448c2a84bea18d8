"""``tsos-rules demo reset``: re-seed the embedded demo CRM (the ``local`` connector)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import click

from tsos_rules.cli._common import config_from, config_option, fail, parse_date
from tsos_rules.config import Config


@click.group()
def demo() -> None:
    """The embedded demo CRM (the "local" connector).

    \b
    Examples:
      tsos-rules demo reset
      tsos-rules demo reset --opportunities 20000 --seed 3
    """


@demo.command("reset")
@config_option
@click.option("--opportunities", type=click.IntRange(0), default=None, help="Deals to generate.")
@click.option("--seed", type=int, default=None, help="Random seed (same seed, same org).")
@click.option("--as-of", callback=parse_date, help="Generate the org as of this date.")
def demo_reset(
    config_path: str | None, opportunities: int | None, seed: int | None, as_of: dt.date | None
) -> None:
    """Re-seed the demo CRM with a freshly generated org, and forget its sync state.

    The CRM file is [connector] path (default: the user data directory); the sync state of the
    local connector in [state] path is cleared so the next sync starts from a full read.

    \b
    Examples:
      tsos-rules demo reset
      tsos-rules demo reset --opportunities 500 --seed 11
    """
    from tsos_rules.connectors.local.connector import NAME, default_crm_path
    from tsos_rules.connectors.local.crm import DEMO_OPPORTUNITIES, DEMO_SEED, LocalCRM
    from tsos_rules.sync.settings import SyncSettings
    from tsos_rules.sync.state import StateStore

    settings = SyncSettings.from_config(config_from(config_path))
    if settings.connector_type != NAME:
        fail(f"connector.type is {settings.connector_type!r}: demo reset works on the local CRM")
    raw = settings.connector_settings
    path = Path(str(raw["path"])).expanduser() if raw.get("path") else default_crm_path()
    deals = opportunities if opportunities is not None else raw.get("opportunities")
    chosen_seed = seed if seed is not None else raw.get("seed")
    state = StateStore(settings.state_path)
    try:
        with state.lock():
            crm = LocalCRM(path)
            try:
                counts = crm.seed_demo(
                    opportunities=int(deals if deals is not None else DEMO_OPPORTUNITIES),
                    seed=int(chosen_seed if chosen_seed is not None else DEMO_SEED),
                    as_of=as_of or dt.date.today(),
                )
            finally:
                crm.close()
            state.forget(NAME)
    finally:
        state.close()
    shown = ", ".join(f"{n:,} {name.replace('_', ' ')}" for name, n in counts.items())
    click.echo(f"demo CRM at {path} re-seeded: {shown}")
    click.echo(f"sync state for {NAME!r} in {settings.state_path} cleared")


def data_in_use(config: Config) -> str:
    """One line naming the CRM and the state store a sync uses, and why these (``sync`` prints
    it first); here because this module is the one allowed to name the local connector."""
    from tsos_rules.config import DATA_DIR_ENV, checkout_root, default_data_dir
    from tsos_rules.connectors.local.connector import NAME, default_crm_path
    from tsos_rules.sync.settings import SyncSettings

    settings = SyncSettings.from_config(config)
    if settings.connector_type == NAME:
        raw = settings.connector_settings.get("path")
        crm = f"demo CRM {Path(str(raw)).expanduser() if raw else default_crm_path()}"
    else:
        crm = f"CRM {settings.connector_type!r}"
    line = f"{crm}; state {settings.state_path}"
    if default_data_dir() in (settings.state_path.parent, default_crm_path().parent):
        if os.environ.get(DATA_DIR_ENV):
            line += f" (data dir from ${DATA_DIR_ENV})"
        elif checkout_root() is not None:
            line += " (this checkout's own data dir)"
        else:
            line += " (the user data dir)"
    return line
