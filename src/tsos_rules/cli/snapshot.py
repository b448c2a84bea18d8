"""``tsos-rules snapshot split FILE --shards N --out DIR``: write a sharded snapshot."""

from __future__ import annotations

import click

from tsos_rules.cli._common import config_from, config_option


@click.group("snapshot")
def snapshot_group() -> None:
    """Work with snapshot files.

    \b
    Examples:
      tsos-rules snapshot split big.json --shards 8 --out big-shards
    """


@snapshot_group.command("split")
@click.argument("file", metavar="FILE|-")
@click.option(
    "--shards",
    type=click.IntRange(1, 255),
    required=True,
    help="Shard files to write (1-255); a few per worker balances them best.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="The directory to write (created; it must not exist or be empty).",
)
@config_option
def split(file: str, shards: int, out: str, config_path: str | None) -> None:
    """Split snapshot FILE into a sharded snapshot directory, by company group.

    Each shard file holds whole company groups (every lead and deal sharing an account or a
    company name, with their accounts, history and activities) and copies of the few records
    of other shards its records read; users, partners and the CRM's exemptions go to one
    reference file. `tsos-rules check DIR --executor processes` then lets each worker read,
    index and judge its own shards; the findings are those of FILE (docs/scale.md).

    FILE is read in passes (streaming, with a scratch file beside DIR), never whole: a
    snapshot larger than memory can be split.

    \b
    Examples:
      tsos-rules snapshot split big.json --shards 8 --out big-shards
      tsos-rules check big-shards --executor processes --jobs 2
    """
    import sys

    from tsos_rules.engine.sharding import split_file

    config_from(config_path)  # a bad configuration is still exit 2, as for every command
    stream = sys.stdin.buffer if file == "-" else None
    manifest, records = split_file(
        getattr(sys.stdin, "name", "<stdin>") if stream else file, shards, out, stream=stream
    )
    sizes = manifest.sizes()
    click.echo(
        f"wrote {out}: {len(sizes)} shards, {sum(sizes) / 1e6:,.1f} MB "
        f"(largest {max(sizes) / 1e6:,.1f} MB), {records:,} records"
    )
