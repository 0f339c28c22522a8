"""`python -m ingest run|status`: the command line for people and cron."""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from graph.errors import GraphEmpty, GraphError, QueryError
from graph.generations import WriterBusy
from ingest.errors import IngestError


def _parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as e:
        raise click.BadParameter(f"not an ISO date: {value!r}") from e
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


@click.group()
def cli() -> None:
    """Hub Atlas ingest: Hugging Face Hub metadata into the knowledge graph."""


@cli.command()
@click.option("--snapshot", "snapshots", multiple=True, type=click.Path(path_type=Path),
              help="Folder of recorded Hub API files (*.jsonl.gz); repeatable. Default: the Hub.")
@click.option("--endpoint", default=None,
              help="Hub endpoint (default: HF_ENDPOINT or huggingface.co).")
@click.option("--limit", type=int, default=None, help="At most N records of each kind.")
@click.option("--since", default=None, help="Only records modified/created after this ISO date.")
@click.option("--full", is_flag=True, help="Ignore the last run's watermark: re-read everything.")
@click.option("--batch-size", type=int, default=2000, show_default=True,
              help="Records per committed batch (incremental runs).")
@click.option("--cards", type=int, default=None,
              help="Live Hub: READMEs fetched per run for models that declare no base model "
                   "(their card prose may name it); default 200, 0 turns it off.")
@click.option("--accounts", "account_limit", type=int, default=None,
              help="Accounts whose type (organisation or user) is asked of the Hub per run, "
                   "most downloaded first, each once; default 500 from the live Hub, 0 with "
                   "--snapshot (set it to ask --endpoint/HF_ENDPOINT); 0 turns it off.")
@click.option("--analytics/--no-analytics", "with_analytics", default=True, show_default=True,
              help="Refresh every derived result (forecasts, search index, aggregates) after "
                   "the load, as the scheduled job does.")
@click.option("--skip", "skip_steps", multiple=True, metavar="STEP",
              help="A derived result not to refresh (e.g. search); repeatable.")
@click.option("--columnar/--record-by-record", default=True, show_default=True,
              help="A first load from snapshots reads listing files column by column (the "
                   "same graph; --record-by-record is the reference path, slower).")
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
def run(snapshots, endpoint, limit, since, full, batch_size, cards, account_limit,
        with_analytics, skip_steps, columnar, as_json) -> None:
    """Ingest from the Hub (default) or from recorded snapshot files, then refresh the
    derived results of the new graph generation (the scheduled job: run it from cron)."""
    from tqdm import tqdm

    from ingest.accounts import DEFAULT_ACCOUNT_LIMIT, AccountLookup
    from ingest.hub import HubSource
    from ingest.run import ingest
    from ingest.sources import LiveHubSource, SnapshotSource

    try:
        hub = HubSource(endpoint=endpoint)  # records (without --snapshot) and account types
        if account_limit is None:
            account_limit = 0 if snapshots else DEFAULT_ACCOUNT_LIMIT
        accounts = AccountLookup(hub, limit=account_limit) if account_limit else None
        if snapshots:
            source = SnapshotSource(*snapshots)
        else:
            from ingest.card_fetch import DEFAULT_CARD_LIMIT, CardFetchingSource

            source = LiveHubSource(hub)
            card_limit = DEFAULT_CARD_LIMIT if cards is None else cards
            if card_limit:
                source = CardFetchingSource(source, hub, limit=card_limit)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e))
    bar = tqdm(unit=" records", file=sys.stderr, disable=None, mininterval=1.0)
    try:
        report = ingest(source, limit=limit, since=_parse_since(since), progress=bar.update,
                        batch_size=batch_size, full=full, accounts=accounts,
                        refresh=_refresh(with_analytics, skip_steps), columnar=columnar)
    except WriterBusy as e:
        raise click.ClickException(f"{e} (another cron run?); nothing was changed")
    except (IngestError, GraphError) as e:
        raise click.ClickException(f"ingest failed: {e}; rerun to resume")
    finally:
        bar.close()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, default=str))
        return
    _print_report(report.as_dict())


def _refresh(enabled: bool, skip: tuple[str, ...]):
    """The derived-results job run with every ingest (this CLI is where the two are wired)."""
    if not enabled:
        return None
    from analytics.pipeline import Refresh

    return Refresh(skip=skip)


def _print_report(r: dict) -> None:
    click.echo(f"run {r['run_id']} ({r['mode']}) from {r['source']}: {r['status']} "
               f"in {r['seconds']} s" + (f", resumed at record {r['resumed_from']}"
                                         if r["resumed_from"] else ""))
    loaded = ", ".join(f"{v:,} {k}" for k, v in r["loaded"].items() if v) or "nothing new"
    click.echo(f"  read {r['read']:,} records; loaded {loaded}")
    if r["skipped"]:
        click.echo("  skipped: " + ", ".join(f"{k} {v:,}" for k, v in sorted(r["skipped"].items())))
    if any(r["rejects"].values()):
        click.echo("  rejected by reason (field problems end in (dropped) or (kept): "
                   "the rest of the record landed):")
        for k, v in sorted(r["rejects"].items(), key=lambda kv: -kv[1]):
            click.echo(f"    {k:<40} {v:>9,}")
    else:
        click.echo("  rejected: none")
    lin = r["lineage"]
    if lin.get("distinct_parents"):
        click.echo(f"  lineage: {lin['lineage_links']:,} links to {lin['distinct_parents']:,} "
                   f"parents, {lin['parents_resolved_share']:.1%} resolve to a model "
                   f"({lin['parents_resolved_by_alias']:,} via URL/case/legacy/name aliases)")
        for key, title in (("parents_resolved_by", "resolved by"),
                           ("parents_unresolved_by_reason", "unresolved by reason"),
                           ("links_by_source", "links by source")):
            if lin.get(key):
                click.echo(f"    {title}: " + ", ".join(f"{k} {v:,}" for k, v in lin[key].items()))
    acc = r.get("accounts") or {}
    if acc:
        click.echo(f"  account types: asked {acc['asked']:,} in {acc['seconds']} s: "
                   f"{acc['organization']:,} organisations, {acc['user']:,} users, "
                   f"{acc['not_found']:,} not on the Hub; {acc['remaining']:,} still unknown"
                   + (f" (stopped: {acc['error']})" if acc.get("error") else ""))
    _print_counts(r["counts"])
    for a in r.get("analytics", []):
        outcome = "ok" if a["ok"] else f"FAILED: {a['error']}"
        click.echo(f"  derived {a['name']:<18} {a['seconds']:>7.1f} s  {outcome}")


def _print_counts(counts: dict) -> None:
    click.echo("  nodes: " + ", ".join(f"{k} {v:,}" for k, v in counts["nodes"].items() if v))
    click.echo("  relations: " + ", ".join(f"{k} {v:,}" for k, v in counts["rels"].items() if v))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--runs", default=5, show_default=True, help="How many recent runs to show.")
@click.option("--resolution", "with_resolution", is_flag=True,
              help="Also list the stub parents by reason (see the `resolution` command).")
def status(as_json, runs, with_resolution) -> None:
    """Counts per label and relation type, and the last ingest runs."""
    from graph import queries as q
    from graph.store import open_store

    try:
        store = open_store(read_only=True)
        try:
            out = {"nodes": q.count_nodes(store), "rels": q.count_rels(store),
                   "runs": q.ingest_runs(store, runs).to_dict(orient="records")}
            if with_resolution:
                from ingest.lineage_report import resolution_report

                out["resolution"] = resolution_report(store)
        finally:
            store.close()
    except GraphEmpty as e:
        _status_failed(as_json, str(e), empty=True)
    except QueryError as e:
        _status_failed(as_json, f"the graph opened but is not a Hub Atlas graph, or is damaged "
                                f"({_one_line(e)}); rebuild it with `python -m ingest run`")
    except GraphError as e:
        _status_failed(as_json, _one_line(e))
    if as_json:
        click.echo(json.dumps(out, indent=2, default=str))
        return
    _print_counts(out)
    click.echo("  last runs:")
    for r in out["runs"]:
        rejects = sum(json.loads(r["rejects"] or "{}").values())
        click.echo(f"    {r['startedAt']}  {r['status']:<8} {r['mode'] or '':<12} "
                   f"rejects {rejects:<6,} {r['source']}")
    if "resolution" in out:
        _print_resolution(out["resolution"])


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def _status_failed(as_json: bool, message: str, *, empty: bool = False) -> None:
    """Say what is wrong (no traceback) and exit 1."""
    if as_json:
        click.echo(json.dumps({"empty": True, "message": message} if empty
                              else {"error": message}))
        sys.exit(1)
    raise click.ClickException(message)


@cli.command("lineage-accuracy")
@click.option("--trees", type=click.Path(path_type=Path, exists=True), required=True,
              help="Folder with trees.jsonl.gz (typed 2025 model trees).")
@click.option("--snapshot", type=click.Path(path_type=Path, exists=True), default=None,
              help="Optional older listing folder to find more children's metadata.")
@click.option("--folds", default=5, show_default=True, help="Family-grouped folds.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def lineage_accuracy(trees, snapshot, folds, as_json) -> None:
    """Learnt relation typing vs the rules on family-grouped held-out typed links."""
    from ingest.lineage_eval import format_report, measure

    result = measure(trees, snapshot, n_splits=folds)
    click.echo(json.dumps(result, indent=2) if as_json else format_report(result))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--examples", default=5, show_default=True, help="Example ids per reason.")
def resolution(as_json, examples) -> None:
    """Parent ids that resolve to no model (stub parents), by reason."""
    from graph.store import open_store
    from ingest.lineage_report import resolution_report

    try:
        store = open_store(read_only=True)
    except GraphEmpty as e:
        raise click.ClickException(str(e))
    try:
        report = resolution_report(store, examples=examples)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    _print_resolution(report)


def _print_resolution(report: dict) -> None:
    click.echo(f"  stub parents: {report['stubs']:,} (models named as a base that no record "
               f"describes); {report['resolvable_now']:,} would now resolve")
    for reason, row in report["unresolved_by_reason"].items():
        click.echo(f"    {reason:<20} {row['parents']:>8,} parents {row['links']:>9,} links  "
                   f"{row['meaning']}")
        for ex in row["examples"]:
            click.echo(f"        e.g. {ex}")


if __name__ == "__main__":
    cli()
