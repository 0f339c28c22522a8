"""`python -m graph …`: command-line tools over the current graph."""
from __future__ import annotations

import click

from graph.parquet_export import export_command


@click.group()
def cli() -> None:
    """Hub Atlas graph tools."""


cli.add_command(export_command)

if __name__ == "__main__":
    cli()
