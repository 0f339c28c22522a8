"""`python -m analytics refresh|status`: the derived results of the current graph generation.

`python -m ingest run` refreshes them after every ingest; `refresh` rebuilds them on their own
(after an upgrade, or when a step failed). On the embedded graph a published generation is
read-only, so the results stored *in* the graph (growth properties, licence verdicts) are
refreshed by the next ingest; on Neo4j both stages run in place.
"""
from __future__ import annotations

import json
import os
import sys

import click

from graph.errors import GraphError


@click.group()
def cli() -> None:
    """Hub Atlas analytics: derived results per graph generation."""


@cli.command()
@click.option("--skip", "skip_steps", multiple=True, metavar="STEP",
              help="A derived result not to rebuild (e.g. search); repeatable.")
@click.option("--only", "only_steps", multiple=True, metavar="STEP",
              help="Rebuild only this derived result (e.g. search); repeatable.")
def refresh(skip_steps, only_steps) -> None:
    """Rebuild the derived results of the current generation."""
    from analytics.pipeline import GRAPH_STEPS, STEPS, Refresh, build_now
    from graph.store import neo4j_configured, open_store

    names = [s.name for s in STEPS]
    unknown = sorted(set(only_steps) - set(names))
    if unknown:
        raise click.UsageError(f"unknown step(s) {', '.join(unknown)}; steps: {', '.join(names)}")
    in_graph = sorted(set(only_steps) & GRAPH_STEPS)
    if in_graph and not neo4j_configured():
        raise click.UsageError(f"{', '.join(in_graph)} write(s) into the graph: on the embedded "
                               "graph they run with an ingest")
    if only_steps:
        skip_steps = tuple(set(skip_steps) | (set(names) - set(only_steps)))
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
    from analytics.pipeline import SEARCH
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
        from analytics.embeddings import cached_choice

        choice = cached_choice()
        click.echo(json.dumps({"generation": gen.name, "complete": results.complete,
                               "results": entries,
                               "embedding_variant": choice.__dict__ if choice else None},
                              indent=2, default=str))
        return
    click.echo(f"generation {gen.name}: {'complete' if results.complete else 'not complete'}")
    for name, s in entries.items():
        click.echo(f"  {name:<18} {s['built_at']}  {s['seconds']:>7.1f} s  "
                   f"{'ok' if s['ok'] else 'FAILED: ' + str(s['error'])}"
                   f"{_embedding_detail(s['detail']) if name == SEARCH else ''}")
    click.echo(_variant_line())


def _embedding_detail(detail: dict) -> str:
    """What the search step embedded: ``(bf16: 761,188 embedded at 300 texts/s, 0 reused)``."""
    if not detail or "variant" not in detail:
        return ""
    rate = detail.get("texts_per_s")
    at = f" at {rate:,.0f} texts/s" if isinstance(rate, (int, float)) and rate == rate else ""
    return (f"  ({detail['variant']}: {detail.get('embedded', 0):,} embedded{at}, "
            f"{detail.get('reused', 0):,} reused)")


def _variant_line() -> str:
    """The embedding variant this CPU uses, as measured at its first use (never measures)."""
    from analytics.embeddings import cached_choice

    forced = os.environ.get("HUBATLAS_EMBED_VARIANT")
    if forced and forced != "auto":
        return f"embedding variant {forced} (set by HUBATLAS_EMBED_VARIANT)"
    choice = cached_choice()
    if choice is None:
        return ("embedding variant: not measured on this CPU yet (a short measurement at the "
                "first search build picks it)")
    return choice.describe()


if __name__ == "__main__":
    cli()
