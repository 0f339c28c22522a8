"""`python -m analytics refresh|status`: the derived results of the current graph generation.

`python -m ingest run` refreshes them after every ingest; `refresh` rebuilds them on their own
(after an upgrade, or when a step failed). On the embedded graph a published generation is
read-only, so the results stored *in* the graph (growth properties, licence verdicts) are
refreshed by the next ingest; on Neo4j both stages run in place.
"""
from __future__ import annotations

import json
import sys

import click

from graph.errors import GraphError


@click.group()
def cli() -> None:
    """Hub Atlas analytics: derived results per graph generation."""


@cli.command()
@click.option("--skip", "skip_steps", multiple=True, metavar="STEP",
              help="A derived result not to rebuild (e.g. search); repeatable.")
def refresh(skip_steps) -> None:
    """Rebuild the derived results of the current generation."""
    from analytics.pipeline import GRAPH_STEPS, STEPS, Refresh, build_now
    from graph.store import neo4j_configured, open_store

    try:
        if neo4j_configured():  # the graph changes in place: both stages, as an ingest runs them
            job, store = Refresh(skip=skip_steps), open_store(read_only=False)
            try:
                done = job.before_publish(store, store.generation())
                done += job.after_publish(store, store.generation())
            finally:
                store.close()
        else:  # a published generation is read-only: every step but the graph properties
            done = build_now([s.name for s in STEPS if s.name not in skip_steps
                              and s.name not in GRAPH_STEPS])
    except GraphError as e:
        raise click.ClickException(str(e))
    for s in done:
        click.echo(f"{s.name:<18} {s.seconds:>7.1f} s  {'ok' if s.ok else 'FAILED: ' + str(s.error)}")
    sys.exit(0 if all(s.ok for s in done) else 1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json) -> None:
    """How each derived result of the current generation was built."""
    from analytics.results import Results
    from graph.store import current_generation, neo4j_configured, open_store

    try:
        if neo4j_configured():
            store = open_store(read_only=True)
            try:
                gen = current_generation(store)
            finally:
                store.close()
        else:
            gen = current_generation()
    except GraphError as e:
        raise click.ClickException(str(e))
    if gen is None:
        raise click.ClickException("no graph yet: run `python -m ingest run` first")
    results = Results(gen)
    entries = {n: s.__dict__ for n, s in results.status().items()}
    if as_json:
        click.echo(json.dumps({"generation": gen.name, "complete": results.complete,
                               "results": entries}, indent=2, default=str))
        return
    click.echo(f"generation {gen.name}: {'complete' if results.complete else 'not complete'}")
    for name, s in entries.items():
        click.echo(f"  {name:<18} {s['built_at']}  {s['seconds']:>7.1f} s  "
                   f"{'ok' if s['ok'] else 'FAILED: ' + str(s['error'])}")


if __name__ == "__main__":
    cli()
