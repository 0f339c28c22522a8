"""`python -m graph query "CYPHER"`: the console's sandboxed runner for people and scripts;
`python -m graph export --parquet DIR`: the whole graph as Parquet files.

Exit status: 0 success, 2 refused (the reason on stderr), 1 any other failure (an engine
error, a timeout, the memory ceiling, a crashed worker, no graph).
"""
from __future__ import annotations

import csv
import json
import sys
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import click

from graph.errors import GraphError, QueryRefused
from graph.parquet_export import export_command

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2


@click.group()
def cli() -> None:
    """Hub Atlas graph: read-only queries and exports of the knowledge graph."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and value != value:  # NaN: not JSON
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _cell(value: Any) -> Any:
    """A CSV cell: nested values as JSON text, nulls empty."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(_jsonable(value), ensure_ascii=False)
    return _jsonable(value)


@cli.command()
@click.argument("cypher")
@click.option("--json", "as_json", is_flag=True, help="Rows as a JSON array of objects.")
@click.option("--csv", "as_csv", is_flag=True, help="Rows as CSV with a header line.")
@click.option("--max-rows", type=click.IntRange(1, 10_000_000), default=1000, show_default=True,
              help="Return at most N rows (raise it for exports).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.1, 3600), default=None,
              help="Seconds before the query is stopped (default: the console's 10 s).")
def query(cypher: str, as_json: bool, as_csv: bool, max_rows: int,
          timeout_s: float | None) -> None:
    """Run one read-only CYPHER statement ('-' reads it from stdin) in the console's
    sandbox and print the rows: a table, or --json / --csv."""
    from graph.readonly import display_frame
    from graph.sandbox import SandboxTarget, run_once

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    if cypher == "-":
        cypher = sys.stdin.read()
    # big exports may send more than the page's 64 MB of rows
    max_mb = max(64, min(4096, max_rows // 1000))
    try:
        result = run_once(SandboxTarget.current(), cypher, row_cap=max_rows,
                          timeout_s=timeout_s, max_result_mb=max_mb)
    except QueryRefused as e:
        click.echo(str(e), err=True)
        sys.exit(EXIT_REFUSED)
    except GraphError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(EXIT_FAILED)
    frame = result.frame
    columns = [str(c) for c in frame.columns]
    rows = frame.astype(object).where(frame.notna(), None).values.tolist()
    if as_json:
        click.echo(json.dumps([_jsonable(dict(zip(columns, r))) for r in rows],
                              ensure_ascii=False, indent=None))
    elif as_csv:
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(columns)
        out.writerows([_cell(v) for v in r] for r in rows)
    elif frame.empty:
        click.echo(f"(no rows; columns: {', '.join(columns) or 'none'})")
    else:
        click.echo(display_frame(frame).to_string(index=False, max_colwidth=80))
    if result.truncated:
        click.echo(f"(first {result.row_cap:,} rows shown; more exist: raise --max-rows)",
                   err=True)


cli.add_command(export_command)

if __name__ == "__main__":
    cli()
