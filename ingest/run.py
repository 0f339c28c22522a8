"""One ingest run, start to finish: lock, resume or start, load, record the run, publish.

The embedded graph is written in a staging copy and published atomically (`graph.generations`)
so the dashboard keeps reading the previous generation meanwhile. A first load uses the bulk
path; later runs upsert in batches, each committed together with the run's cursor, so a run
killed at any moment resumes where it stopped and ends with exactly the counts of a clean run.
"""
from __future__ import annotations

import gc
import itertools
import json
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Protocol

from graph import queries as q
from graph.dates import iso_utc
from graph.errors import GraphError
from graph.generations import Generations
from graph.schema import LINEAGE_RELS, Label, Rel
from graph.store import (
    Generation,
    GraphStore,
    chunked,
    db_root,
    neo4j_configured,
    neo4j_generation,
    open_embedded,
    open_store,
)
from ingest.accounts import AccountLookup
from ingest.columnar import ListingPart
from ingest.errors import RecordError
from ingest.lineage import IdResolver
from ingest.lineage_report import resolver_from_store
from ingest.loader import (
    GraphRows,
    LineageStats,
    bulk_write,
    closing_edges,
    cycle_edges,
    rel_statements,
    relink_statements,
    unreferenced_statements,
    upsert_statements,
)
from ingest.loader_columnar import PlainRows
from ingest.records import RECORD_TYPES, DatasetRecord, ModelRecord, SpaceRecord, merge_records
from ingest.relation_features import author_habits
from ingest.relation_model import AuthorHistory, retype_in_child, retype_links, type_links
from ingest.sources import RawItem, Source

BATCH_SIZE = 2000


class Refresher(Protocol):
    """Derived results refreshed by the run (`analytics.pipeline.Refresh`; wired by the CLI).

    `before_publish` runs on the loaded graph before it is published (it may write into it,
    and stores files under the new generation's folder), `after_publish` on the published
    generation, read-only. Failures are theirs to record: a run publishes whatever they do."""

    def before_publish(self, store: GraphStore, generation: Generation) -> list[Any]: ...

    def after_publish(self, store: GraphStore, generation: Generation) -> list[Any]: ...


@dataclass
class RunReport:
    run_id: str
    source: str
    mode: str  # "bulk" (first load) or "incremental"
    status: str = "running"
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    ended_at: datetime | None = None
    read: int = 0
    loaded: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    rejects: Counter = field(default_factory=Counter)
    lineage: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    resumed_from: int = 0
    seconds: float = 0.0
    watermark: datetime | None = None  # newest lastModified/createdAt seen
    # seconds per phase (bulk: parse/retype/build/write)
    phases: dict = field(default_factory=dict)
    analytics: list = field(default_factory=list)  # how each derived result went (Refresher)
    accounts: dict = field(default_factory=dict)  # the account-type lookups (ingest.accounts)

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "source": self.source, "mode": self.mode,
                "status": self.status, "started_at": str(self.started_at),
                "ended_at": str(self.ended_at), "read": self.read, "loaded": dict(self.loaded),
                "skipped": dict(self.skipped), "rejects": dict(self.rejects),
                "lineage": self.lineage, "counts": self.counts,
                "resumed_from": self.resumed_from, "seconds": round(self.seconds, 2),
                "watermark": str(self.watermark), "phases": self.phases,
                "accounts": self.accounts,
                "analytics": [{"name": a.name, "ok": a.ok, "seconds": a.seconds, "error": a.error}
                              for a in self.analytics]}


def _date_of(record) -> datetime | None:
    return getattr(record, "last_modified", None) or getattr(record, "created_at", None)


class RecordStream:
    """Parse raw items into records, counting rejects, applying `since`."""

    def __init__(self, report: RunReport, since: datetime | None):
        self.report = report
        self.since = since
        self.watermark: datetime | None = None

    def parse(self, item: RawItem):
        self.report.read += 1
        if item.error:
            self.report.rejects[f"{item.kind}:{item.error}"] += 1
            return None
        try:
            record = RECORD_TYPES[item.kind].from_api(item.data)
        except RecordError as e:
            self.report.rejects[f"{item.kind}:{e.reason}"] += 1
            return None
        except Exception as e:  # noqa: BLE001 - one record must never end a cron run
            self.report.rejects[f"{item.kind}:unexpected_error:{type(e).__name__}"] += 1
            return None
        for issue, n in record.issues.items():
            self.report.rejects[f"{item.kind}:{issue}"] += n
        when = _date_of(record)
        if when is not None and (self.watermark is None or when > self.watermark):
            self.watermark = when
        if self.since is not None and (when is None or when <= self.since):
            self.report.skipped[f"{item.kind}:older_than_since"] += 1
            return None
        return record


def _split(records) -> tuple[list[ModelRecord], list[DatasetRecord], list[SpaceRecord]]:
    models = [r for r in records if isinstance(r, ModelRecord)]
    datasets = [r for r in records if isinstance(r, DatasetRecord)]
    spaces = [r for r in records if isinstance(r, SpaceRecord)]
    return models, datasets, spaces


def _observations(rows: GraphRows, run_id: str, at: datetime) -> None:
    obs = [{"src": m["id"], "dst": run_id, "downloads": m["downloads"], "likes": m["likes"],
            "at": at} for m in rows.nodes.get(Label.MODEL, [])]
    rows.rels[(Rel.OBSERVED_IN, Label.MODEL, Label.INGEST_RUN)] = obs


def ingest(source: Source, *, root: Path | None = None, limit: int | None = None,
           since: datetime | None = None, progress: Callable[[int], None] | None = None,
           batch_size: int = BATCH_SIZE, store: GraphStore | None = None,
           full: bool = False, refresh: Refresher | None = None,
           accounts: AccountLookup | None = None, columnar: bool = True) -> RunReport:
    """Run one ingest of `source` into the configured graph and return its report.

    Later runs only take records newer than the last run's watermark, unless `since` is
    given or `full` asks to re-read everything. `accounts` asks the Hub the type of a bounded
    batch of accounts after the load (without it, types stay what the graph knows). `refresh`
    recomputes the derived results (before and after the publish) while the run still holds
    the writer lock. `columnar`: a first load reads listing files column by column
    (`ingest.columnar`; off: record by record, the same graph).
    """
    if store is not None or neo4j_configured():
        store = store or open_store(read_only=False)
        return _ingest_in_place(store, source, limit, since, progress, batch_size, full,
                                refresh, accounts)
    gens = Generations(root or db_root())
    with gens.writer_lock():
        return _ingest_embedded(gens, source, limit, since, progress, batch_size, full,
                                refresh, accounts, columnar)


def _lookup_accounts(store: GraphStore, report: RunReport,
                     accounts: AccountLookup | None) -> None:
    """The loaded graph's account types from the Hub, a bounded batch per run."""
    if accounts is not None:
        report.accounts = accounts.run(store).as_dict()


def _since(store: GraphStore, since: datetime | None, full: bool) -> datetime | None:
    if since is not None or full:
        return since
    watermark = q.last_watermark(store)
    return watermark.replace(tzinfo=timezone.utc) if watermark is not None else None


def _ingest_embedded(gens: Generations, source: Source, limit, since, progress,
                     batch_size, full, refresh: Refresher | None,
                     accounts: AccountLookup | None, columnar: bool = True) -> RunReport:
    staging_dir = gens.pending_staging()
    if staging_dir is not None:
        try:
            store = open_embedded(staging_dir / "graph.kuzu", read_only=False)
            run = q.running_run(store)
        except GraphError:
            # killed while the staging copy was being made: nothing in it was committed by
            # the run, so start again from the published generation (else every rerun fails)
            store, run = None, None
        if run and run.mode == "incremental" and run.source == source.name:
            report = _run_batches(store, source, run.id, limit, since, progress,
                                  batch_size, resume=run)
            _lookup_accounts(store, report, accounts)
            return _finish(gens, store, staging_dir, report, refresh)
        # a bulk first load cannot be resumed half-way: start it again from nothing
        if store is not None:
            store.close()
        gens.discard(staging_dir)
    run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    first_load = gens.current_path() is None
    path = gens.new_staging(run_id, copy_current=not first_load)
    store = open_embedded(path, read_only=False)
    if first_load:
        with _cyclic_gc_paused():
            report = _run_bulk(store, source, run_id, limit, since, progress, columnar)
    else:
        report = _run_batches(store, source, run_id, limit, _since(store, since, full),
                              progress, batch_size, resume=None)
    _lookup_accounts(store, report, accounts)
    return _finish(gens, store, path.parent, report, refresh)


def _ingest_in_place(store: GraphStore, source: Source, limit, since, progress,
                     batch_size, full, refresh: Refresher | None,
                     accounts: AccountLookup | None) -> RunReport:
    """Neo4j (or a store handed in): upserts in place; an unfinished run is resumed."""
    store.ensure_schema()
    run = q.running_run(store)
    if run and run.source == source.name:
        report = _run_batches(store, source, run.id, limit, since, progress, batch_size,
                              resume=run)
    else:
        run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
        report = _run_batches(store, source, run_id, limit, _since(store, since, full),
                              progress, batch_size, resume=None)
    _lookup_accounts(store, report, accounts)
    # the generation this run will publish: Neo4j names it by the run once it has finished
    generation = store.generation()
    if generation.backend == "neo4j":
        generation = neo4j_generation(report.run_id)
    # Neo4j readers switch to the new generation here and read the previous generation's
    # results until its own are ready (analytics.results.find_ready)
    _record_end(store, report)
    if refresh is not None:
        report.analytics += refresh.before_publish(store, generation)
        report.analytics += refresh.after_publish(store, generation)
    return report


def _finish(gens: Generations, store: GraphStore, staging_dir: Path, report: RunReport,
            refresh: Refresher | None) -> RunReport:
    _record_end(store, report)  # the ingest is done; the derived results follow
    if refresh is not None:  # its files land in the staging folder and are published with it
        report.analytics += refresh.before_publish(store, store.generation())
    store.checkpoint()
    store.close()
    gens.publish(staging_dir)
    if refresh is not None:
        reader = open_store(read_only=True, root=gens.root)
        try:
            report.analytics += refresh.after_publish(reader, reader.generation())
        finally:
            reader.close()
    return report


def _record_end(store: GraphStore, report: RunReport) -> None:
    report.counts = {"nodes": q.count_nodes(store), "rels": q.count_rels(store)}
    report.status = "ok"
    report.ended_at = datetime.now(timezone.utc)
    report.seconds = (report.ended_at - report.started_at).total_seconds()
    store.write([(q.finish_run(store), {
        "id": report.run_id, "status": report.status,
        "counts": json.dumps({**report.counts, "lineage": report.lineage,
                              "loaded": dict(report.loaded), "read": report.read,
                              "accounts": report.accounts}),
        "rejects": json.dumps(dict(report.rejects)),
        "endedAt": iso_utc(report.ended_at),
        "watermark": iso_utc(report.watermark)})])


def _start_run(store: GraphStore, report: RunReport, since: datetime | None,
               limit: int | None) -> None:
    store.write([(q.start_run(store), {"id": report.run_id, "source": report.source,
                                       "mode": report.mode, "startedAt": iso_utc(report.started_at),
                                       "since": iso_utc(since), "recordLimit": limit})])


@contextmanager
def _cyclic_gc_paused():
    """A first load makes millions of objects and almost no reference cycles: the cyclic
    collector would scan them again and again (about 2 CPU-s on the full snapshot), and in
    the forked typing child it would touch, and so copy, every page the parent shares."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _run_bulk(store: GraphStore, source: Source, run_id: str, limit, since,
              progress, columnar: bool = True) -> RunReport:
    report = RunReport(run_id, source.name, "bulk")
    _start_run(store, report, since, limit)
    stream = RecordStream(report, since)
    clock = time.perf_counter()
    # a whole first load reads listing files column by column (`ingest.columnar`); the
    # records that path leaves (and every other file) go through the per-record path
    fast = columnar and limit is None and since is None and hasattr(source, "iter_bulk")
    items = source.iter_bulk() if fast else source.iter_items(limit=limit, since=since)
    parts: list[tuple[int, ListingPart]] = []
    pending: list[tuple[int, RawItem]] = []  # (position in the stream, item)
    pos = 0
    for item in items:
        if isinstance(item, ListingPart):
            parts.append((pos, item))
            pending += [(pos + p, it) for p, it in item.slow]
            pos += item.n_lines
        else:
            pending.append((pos, item))
            pos += 1
    parsed: list[tuple[int, str, object]] = []
    for at, item in pending:
        record = stream.parse(item)
        if progress:
            progress(1)
        if record is not None:
            parsed.append((at, item.kind, record))
    plain = PlainRows.collect(parts, {(kind, r.id) for _, kind, r in parsed})
    for at, item in plain.fallback:  # plain rows whose id comes twice: merged as records
        record = stream.parse(item)
        if record is not None:
            parsed.append((at, item.kind, record))
    parsed += [(at, "model", record) for at, record in plain.records]
    parsed.sort(key=lambda x: x[0])
    report.read += plain.count()
    if progress:
        progress(plain.count())
    by_id: dict[tuple[str, str], object] = {}
    first_at: dict[tuple[str, str], int] = {}
    for at, kind, record in parsed:
        key = (kind, record.id)
        if key in by_id:
            report.skipped[f"{kind}:merged_duplicate_id"] += 1
            record = merge_records(by_id[key], record)
        else:
            first_at[key] = at
        by_id[key] = record
    models, datasets, spaces = _split(by_id.values())
    stream.watermark = plain.watermark(stream.watermark)
    report.phases["parse"] = round(time.perf_counter() - clock, 2)
    clock = time.perf_counter()
    # learnt relation types for links the Hub did not type; habits over every model. Typed
    # in a child process on the other core while this one builds and writes everything
    # else; the lineage rows take the learnt types just before they are written
    habits = lru_cache(maxsize=1)(lambda: author_habits(plain.with_model_frame(models)))
    typed = retype_in_child(models, habits, plain.link_frame if plain.links else None) \
        if fast else None
    if typed is None:
        retype_plain_and_records(models, plain, habits)
    report.phases["retype"] = round(time.perf_counter() - clock, 2)
    clock = time.perf_counter()
    resolver = plain.resolver(models, [first_at[("model", m.id)] for m in models])
    stats = LineageStats()
    rows = GraphRows.build(models, datasets, spaces, resolver, report.rejects, stats)
    plain.add_lineage(rows, resolver, report.rejects, stats)
    rows.dedupe_rels()
    cyclic = cycle_edges((r["src"], r["dst"]) for _, r in rows.lineage_edges())
    report.rejects["lineage_cycle"] += rows.drop_lineage(cyclic)
    _observations(rows, run_id, report.started_at)
    plain.add_to(rows, run_id, report.started_at)
    report.phases["build"] = round(time.perf_counter() - clock, 2)
    clock = time.perf_counter()

    def learnt_types() -> None:
        waited = time.perf_counter()
        if not typed.wait():  # the child failed: type here, as a record-by-record load does
            retype_plain_and_records(models, plain, habits)
        else:
            plain.set_relations(typed.extra)
        rows.retype_lineage(models, resolver, plain.first_relations(resolver))
        report.phases["retype_wait"] = round(time.perf_counter() - waited, 2)

    bulk_write(store, rows, before_lineage=learnt_types if typed is not None else None)
    report.phases["write"] = round(time.perf_counter() - clock, 2)
    report.loaded.update({"model": len(models) + plain.in_tables("model"),
                          "dataset": len(datasets) + plain.in_tables("dataset"),
                          "space": len(spaces)})
    report.rejects = +report.rejects
    report.lineage = stats.as_dict(resolver)
    report.watermark = stream.watermark
    return report


def retype_plain_and_records(models: list[ModelRecord], plain: PlainRows, habits) -> None:
    """The learnt relation types of the records' inferred links and of the plain links."""
    retype_links(models, habits=habits)
    if plain.links:
        plain.set_relations(type_links(plain.link_frame(), habits()))


def _batch_records(stream: RecordStream, batch) -> dict[tuple[str, str], object]:
    """The batch's records by (kind, id), duplicates merged (the later wins where it gives)."""
    records: dict[tuple[str, str], object] = {}
    for item in batch:
        record = stream.parse(item)
        if record is not None:
            key = (item.kind, record.id)
            records[key] = merge_records(records[key], record) if key in records else record
    return records


def _replay(items, since, done: int, batch_size: int, typed: dict[str, ModelRecord]
            ) -> LineageStats:
    """The lineage links of the first `done` items, which an interrupted run committed
    (parsed again in the same batches, nothing written), so that the resumed run's report
    covers the whole run; their models with inferred links join `typed`."""
    stats = LineageStats()
    stream = RecordStream(RunReport("replay", "", "incremental"), since)
    for batch in chunked(itertools.islice(items, done), batch_size):
        for record in _batch_records(stream, batch).values():
            if isinstance(record, ModelRecord):
                stats.add(record)
                _keep_typed(typed, [record])
    return stats


def _keep_typed(typed: dict[str, ModelRecord], models) -> None:
    """Remember the run's models with inferred links (the last record of an id that gives
    its base models), to retype them once the run has seen every record."""
    for m in models:
        if any(b.inferred for b in m.base_models) and (
                m.id not in typed or "base_models" in m.given):
            typed[m.id] = m


def _retype_statements(store: GraphStore, typed: dict[str, ModelRecord],
                       history: AuthorHistory, resolver: IdResolver
                       ) -> tuple[list[tuple[str, dict]], int]:
    """Statements that retype the run's inferred links with their authors' habits over the
    whole run (each batch was typed with the habits seen so far; a clean first load of the
    same data types with all of them), and how many children change. Only the types of the
    edges the batches wrote change (cycle-dropped edges stay dropped)."""
    models = list(typed.values())
    if not models:
        return [], 0
    retype_links(models, habits=lambda: history.habits(models))
    rows = GraphRows.build(models, [], [], resolver, Counter(), LineageStats())
    rows.dedupe_rels()
    want: dict[str, dict[str, tuple[Rel, dict]]] = {}
    for rel, row in rows.lineage_edges():
        want.setdefault(row["src"], {})[row["dst"]] = (rel, row)
    have: dict[str, dict[str, str]] = {}
    for chunk in chunked(sorted(want), 2000):
        for r in store.rows(q.lineage_edge_types(store), {"ids": list(chunk)}):
            have.setdefault(r["child"], {})[r["parent"]] = r["rel"]

    def wanted(child: str, parent: str) -> tuple[Rel, dict] | None:
        # a stored edge may still point at a stub that now resolves (relinked below)
        edges = want[child]
        return edges.get(parent) or edges.get(resolver.resolve(parent)[0])

    # children whose stored edges are all still given, some now with another type
    changed = sorted(c for c in want if c in have
                     and all(wanted(c, p) for p in have[c])
                     and any(wanted(c, p)[0].value != rel for p, rel in have[c].items()))
    if not changed:
        return [], 0
    by_rel: dict[Rel, list[dict]] = {}
    for child in changed:
        for parent in have[child]:  # the stored target is kept: relinking moves it later
            rel, row = wanted(child, parent)
            by_rel.setdefault(rel, []).append({**row, "dst": parent})
    stmts = [(q.delete_out_rels(rel, Label.MODEL), {"ids": list(chunk)})
             for rel in dict.fromkeys(LINEAGE_RELS.values()) for chunk in chunked(changed, 2000)]
    for rel, rels in by_rel.items():
        stmts += rel_statements(store, rel, Label.MODEL, Label.MODEL, rels, set(changed))
    return stmts, len(changed)


def _checkpoint(store: GraphStore, report: RunReport, done: int, batch_size: int,
                watermark: datetime | None) -> tuple[str, dict]:
    """The statement that records the run's cursor and everything its report needs so far."""
    return (q.checkpoint_run(store), {
        "id": report.run_id, "cursor": done, "rejects": json.dumps(dict(report.rejects)),
        "counts": json.dumps({"read": report.read, "loaded": dict(report.loaded),
                              "skipped": dict(report.skipped), "batch_size": batch_size}),
        "watermark": iso_utc(watermark)})


def _run_batches(store: GraphStore, source: Source, run_id: str, limit, since, progress,
                 batch_size: int, resume: q.RunningRun | None) -> RunReport:
    report = RunReport(run_id, source.name, "incremental")
    done = 0
    stats = LineageStats()
    if resume:
        done = resume.cursor
        report.rejects.update(json.loads(resume.rejects or "{}"))
        saved = json.loads(resume.counts or "{}")
        report.read = int(saved.get("read", 0))
        report.loaded.update(saved.get("loaded", {}))
        report.skipped.update(saved.get("skipped", {}))
        batch_size = int(saved.get("batch_size") or batch_size)
        report.resumed_from = done
        if resume.started_at is not None:
            report.started_at = resume.started_at.replace(tzinfo=timezone.utc)
        # replay the interrupted run's own selection, so the cursor means the same records
        since = resume.since.replace(tzinfo=timezone.utc) if resume.since else None
        limit = resume.record_limit
    else:
        _start_run(store, report, since, limit)
    # the source is deterministic: the first `done` items are what the interrupted run
    # committed; they are only replayed for the report
    items = iter(source.iter_items(limit=limit, since=since))
    typed: dict[str, ModelRecord] = {}  # the run's models with inferred links (see below)
    if done:
        stats = _replay(items, since, done, batch_size, typed)
    stream = RecordStream(report, since)
    if resume and resume.watermark is not None:
        stream.watermark = resume.watermark.replace(tzinfo=timezone.utc)
    resolver = resolver_from_store(store)
    history = AuthorHistory(store)  # the authors' habits, for typing each batch's links
    if progress and done:
        progress(done)
    for batch in chunked(items, batch_size):
        # rejects are counted straight into the report: a batch that fails to commit ends
        # the process, and a resumed run reloads the counts committed with the last cursor
        records = _batch_records(stream, batch)
        models, datasets, spaces = _split(records.values())
        # learnt relation types for links the Hub did not type (authors' habits: graph + batch)
        retype_links(models, habits=lambda: history.habits(models))
        _keep_typed(typed, models)
        for m in models:
            resolver.add(m.id)
        rows = GraphRows.build(models, datasets, spaces, resolver, report.rejects, stats)
        rows.dedupe_rels()
        bad = closing_edges(store, [(r["src"], r["dst"]) for _, r in rows.lineage_edges()],
                            rows.lineage_rewritten())
        report.rejects["lineage_cycle"] += rows.drop_lineage(bad)
        _observations(rows, run_id, report.started_at)
        done += len(batch)
        report.loaded.update({"model": len(models), "dataset": len(datasets),
                              "space": len(spaces)})
        stmts = upsert_statements(store, rows)
        stmts.append(_checkpoint(store, report, done, batch_size, stream.watermark))
        store.write(stmts)  # the batch and its checkpoint commit together
        if progress:
            progress(len(batch))
    # the batches were typed with the habits seen so far: retype with the whole run's
    retype, retyped = _retype_statements(store, typed, history, resolver)
    if retype:
        store.write(retype)
        report.loaded["retyped_children"] += retyped
    relink, relinked = relink_statements(store, resolver, report.rejects)
    report.loaded["relinked_stub_parents"] += relinked
    # with the counts, so that a run resumed after this step still reports it
    store.write([*relink, *unreferenced_statements(),
                 _checkpoint(store, report, done, batch_size, stream.watermark)])
    report.rejects = +report.rejects
    report.lineage = stats.as_dict(resolver)
    report.watermark = stream.watermark
    return report
