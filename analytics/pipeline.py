"""The scheduled job's analytics: every derived result, refreshed with each ingest.

Two stages, so pages never fit, embed or scan the whole graph on a request:

1. `Refresh.before_publish(store, generation)` runs on the new graph while it is still private
   (the embedded staging copy; on Neo4j, in place). It writes what
   users query in Cypher into the graph — per base model its WSB parameters and forecasts
   (`graph.schema.GROWTH_PROPERTIES`), per derivative its licence verdicts
   (`graph.schema.LICENCE_PROPERTIES`) — and stores the quick results as files of the new
   generation (overview, id index, lineage index, forecasts, licence audit, publisher index,
   trends), so they are there the moment the generation is published.
2. `Refresh.after_publish(store, generation)` runs on the published generation, read-only,
   for the slow results (the search index), while the app already shows the new graph.

Each step is isolated: one that fails is recorded with its error in the generation's manifest
and the others still run, so a bad result never stops the cron job or the publish. Pages read
a result from the newest generation that has it ready (`analytics.results.find_ready`); the
generation is marked complete when every step succeeded (pruning keeps the newest such).
"""
from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import pandas as pd

from analytics.results import Results, ResultStatus
from graph import queries as q
from graph.dates import utc_times
from graph.schema import GROWTH_PROPERTIES, SAMPLE_SOURCE_PREFIX, Label
from graph.store import Generation, GraphStore, chunked

log = logging.getLogger(__name__)

#: names of the stored results (file stems under the generation's results folder)
GROWTH_PROPERTIES_STEP = "growth_properties"  # the forecasts, as Model properties
ABOUT = "about"
LINEAGE = "lineage"
OVERVIEW = "overview"
ID_INDEX = "id_index"
FORECASTS = "forecasts"
SEARCH = "search"
RECOMMENDER = "recommender"  # saved by the search step, beside the index
LICENCE_VERDICTS = "licence_verdicts"  # the licence verdicts, as Model properties
LICENCE_AUDIT = "licence_audit"  # a folder: analytics.licences.LicenceAudit
PUBLISHERS = "publishers"  # a table: analytics.publishers.build_publisher_index
TRENDS = "trends"  # a folder: analytics.trends.Trends

#: steps that write into the graph: they run with an ingest, before the publish
GRAPH_STEPS = frozenset({GROWTH_PROPERTIES_STEP, LICENCE_VERDICTS})

FORECAST_HORIZONS = (3, 6, 12)



BEFORE_PUBLISH = "before_publish"
AFTER_PUBLISH = "after_publish"


@dataclass
class Memo:
    """What one step computed that a later step of the same job reuses (e.g. the forecasts)."""

    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One derived result: `run(store, results, memo)` builds and saves it, returning details
    for the manifest (counts, sizes)."""

    name: str
    stage: str  # BEFORE_PUBLISH (may write into the graph) or AFTER_PUBLISH (read-only)
    run: Callable[..., dict[str, Any]]


# -- when the observations end, and the forecasts -----------------------------------------------
def observed_until(store: GraphStore) -> pd.Timestamp | None:
    """Where the graph's observations end: the end of the densely observed creation dates
    (`analytics.growth.coverage_end`), so a few records crawled later (the 2025 trees beside
    the July-2024 listing) do not move "now" for the whole app."""
    from analytics.growth import coverage_end

    return coverage_end(q.model_created_dates(store))


def compute_forecasts(store: GraphStore, as_of: pd.Timestamp | None):
    """Forecast every base model's derivatives (`analytics.forecasts.build_forecasts`)."""
    from analytics.forecasts import build_forecasts

    return build_forecasts(q.derivative_edges(store), as_of=as_of if as_of is not None else "auto",
                           horizons=FORECAST_HORIZONS)


def growth_rows(table) -> pd.DataFrame:
    """The forecasts table as `GROWTH_PROPERTIES` rows (id + one column per property)."""
    rows = table.graph_properties()
    rows["derivatives_observed"] = table.models["derivatives"].to_numpy()
    when = utc_times(rows["forecast_as_of"])
    rows["forecast_as_of"] = when.dt.tz_localize(None)
    names = [name for name, _ in GROWTH_PROPERTIES]
    missing = [n for n in names if n not in rows]
    if missing:
        raise ValueError(f"the forecasts table lacks graph properties {missing}")
    rows["id"] = rows["id"].astype(str)
    return rows[["id", *names]]


def write_growth_properties(store: GraphStore, rows: pd.DataFrame, *, batch: int = 2000) -> int:
    """Replace every model's growth properties with `rows` (stale ones are cleared first)."""
    columns = [name for name, _ in GROWTH_PROPERTIES]
    stmts = [(q.clear_node_properties(Label.MODEL, columns, marker="forecast_method"), {})]
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    for r in records:
        when = r.get("forecast_as_of")
        r["forecast_as_of"] = when.isoformat() if when is not None else None
        r["derivatives_observed"] = None if r["derivatives_observed"] is None else int(r["derivatives_observed"])
        r["growth_fit_ok"] = None if r["growth_fit_ok"] is None else bool(r["growth_fit_ok"])
    query = q.set_node_properties(store, Label.MODEL, columns)
    for chunk in chunked(records, batch):
        stmts.append((query, {"rows": chunk}))
    store.write(stmts)
    return len(records)


def _as_of(store: GraphStore, memo: Memo) -> pd.Timestamp | None:
    if "as_of" not in memo.values:
        memo.values["as_of"] = observed_until(store)
    return memo.values["as_of"]


def _forecasts_graph(store: GraphStore, results: Results, memo: Memo) -> dict[str, Any]:
    table = compute_forecasts(store, _as_of(store, memo))
    memo.values[FORECASTS] = table
    n = write_growth_properties(store, growth_rows(table)) if len(table) else 0
    return {"base_models": n, "fit_ok": int(table.models["growth_fit_ok"].sum()) if n else 0}


def _forecasts_files(store: GraphStore, results: Results, memo: Memo) -> dict[str, Any]:
    table = memo.values.get(FORECASTS)
    if table is None:
        table = compute_forecasts(store, _as_of(store, memo))
    staged = results.staging_folder(FORECASTS)
    table.save(staged)
    results.commit_folder(FORECASTS, staged)
    return {"base_models": len(table)}


# -- overview, id index, search ---------------------------------------------------------------
def _about(store: GraphStore, results: Results, memo: Memo) -> dict[str, Any]:
    """What the graph was loaded from: its ingest sources, and whether it is the shipped sample."""
    runs = q.ingest_runs(store, 1000)
    sources = sorted(set(runs["source"].dropna())) if len(runs) else []
    as_of = _as_of(store, memo)
    about = {"sources": sources,
             "sample": bool(sources) and all(s.startswith(SAMPLE_SOURCE_PREFIX) for s in sources),
             "runs": len(runs), "observed_until": None if as_of is None else as_of.isoformat()}
    results.save_json(ABOUT, about)
    return about


def _overview(store: GraphStore, results: Results, memo: Memo) -> dict[str, Any]:
    from analytics.overview import build_overview

    overview = build_overview(store, as_of=_as_of(store, memo))
    results.save_object(OVERVIEW, overview)
    return {"models": overview.nodes.get("Model", 0)}


def _id_index(store: GraphStore, results: Results, memo: Memo) -> dict[str, Any]:
    frame = q.model_ids_downloads(store)
    results.save_frame(ID_INDEX, frame)
    return {"ids": len(frame)}


def _lineage(store: GraphStore, results: Results, memo: Memo) -> dict[str, Any]:
    """The in-memory lineage index the embedded store's lineage walks load (graph.lineage_index)."""
    from graph.lineage_index import LineageIndex

    index = LineageIndex.build(store)
    index.save(results.dir)
    return {"models": len(index)}


def _search(store: GraphStore, results: Results, memo: Memo) -> dict[str, Any]:
    """The search index (vectors, the fitted lexical and coarse index) and the recommender
    over it, each saved as a folder the pages memory-map (analytics.retrieval)."""
    from analytics.recommend import build_recommender
    from analytics.retrieval import build_search

    search = build_search(store, save_to=results.folder(SEARCH))  # saves atomically
    build_recommender(search, store, save_to=results.folder(RECOMMENDER))
    info = getattr(search, "build_info_", {})
    return {"models": len(search.ids_),
            **{k: info[k] for k in ("embedded", "encoded", "reused", "variant", "texts_per_s",
                                    "embed_s") if k in info}}


# -- licence audit, publishers, trends ---------------------------------------------------------
def _licence_audit_of(store: GraphStore, memo: Memo):
    if LICENCE_AUDIT not in memo.values:
        from analytics.licences import build_licence_audit

        memo.values[LICENCE_AUDIT] = build_licence_audit(store)
    return memo.values[LICENCE_AUDIT]


def _licence_verdicts(store: GraphStore, results: Results, memo: Memo) -> dict[str, Any]:
    from analytics.licences import CONFLICT, write_licence_verdicts

    audit = _licence_audit_of(store, memo)
    written = write_licence_verdicts(store, audit)
    return {"models": written["models"],
            "conflicts": int((audit.models["verdict"] == CONFLICT).sum())}


def _licence_audit(store: GraphStore, results: Results, memo: Memo) -> dict[str, Any]:
    audit = _licence_audit_of(store, memo)
    staged = results.staging_folder(LICENCE_AUDIT)
    audit.save(staged)
    results.commit_folder(LICENCE_AUDIT, staged)
    return {"edges": len(audit.edges), "models": len(audit.models),
            "families": len(audit.families)}


def _publishers(store: GraphStore, results: Results, memo: Memo) -> dict[str, Any]:
    from analytics.publishers import build_publisher_index

    index = build_publisher_index(store, _licence_audit_of(store, memo))
    results.save_frame(PUBLISHERS, index)
    return {"authors": len(index)}


def _trends(store: GraphStore, results: Results, memo: Memo) -> dict[str, Any]:
    from analytics.trends import build_trends

    trends = build_trends(store)
    staged = results.staging_folder(TRENDS)
    trends.save(staged)
    results.commit_folder(TRENDS, staged)
    return {"models": len(trends.trending), "runs": len(trends.runs)}


STEPS: tuple[Step, ...] = (
    Step(GROWTH_PROPERTIES_STEP, BEFORE_PUBLISH, _forecasts_graph),
    Step(FORECASTS, BEFORE_PUBLISH, _forecasts_files),
    Step(ABOUT, BEFORE_PUBLISH, _about),
    Step(OVERVIEW, BEFORE_PUBLISH, _overview),
    Step(ID_INDEX, BEFORE_PUBLISH, _id_index),
    Step(LINEAGE, BEFORE_PUBLISH, _lineage),
    Step(LICENCE_VERDICTS, BEFORE_PUBLISH, _licence_verdicts),
    Step(LICENCE_AUDIT, BEFORE_PUBLISH, _licence_audit),
    Step(PUBLISHERS, BEFORE_PUBLISH, _publishers),
    Step(TRENDS, BEFORE_PUBLISH, _trends),
    Step(SEARCH, AFTER_PUBLISH, _search),
)


class Refresh:
    """Runs the steps of one stage and records how each went.

    `skip`: names of steps not to run (e.g. `{"search"}` where the index is not wanted)."""

    def __init__(self, steps: Sequence[Step] = STEPS, *, skip: Sequence[str] = ()):
        self.steps = tuple(s for s in steps if s.name not in set(skip))
        self.memo = Memo()
        self.report: list[ResultStatus] = []

    def before_publish(self, store: GraphStore, generation: Generation) -> list[ResultStatus]:
        """The first stage, on the new graph before it is published (writable)."""
        return self._run(BEFORE_PUBLISH, store, Results(generation))

    def after_publish(self, store: GraphStore, generation: Generation) -> list[ResultStatus]:
        """The second stage, on the published generation (read-only); marks the generation's
        results complete when every step of both stages succeeded."""
        results = Results(generation)
        done = self._run(AFTER_PUBLISH, store, results)
        if all(s.ok for s in results.status().values()) and all(s.ok for s in self.report):
            results.mark_complete()
        return done

    def _run(self, stage: str, store: GraphStore, results: Results) -> list[ResultStatus]:
        done = []
        for step in (s for s in self.steps if s.stage == stage):
            started = time.perf_counter()
            try:
                detail = step.run(store, results, self.memo) or {}
                status = ResultStatus(step.name, True, _now(), _since(started), None, detail)
            except Exception as e:  # noqa: BLE001 - one failed result must not stop the job
                log.warning("derived result %s failed: %s", step.name, e)
                status = ResultStatus(step.name, False, _now(), _since(started),
                                      f"{type(e).__name__}: {e}",
                                      {"traceback": traceback.format_exc(limit=8)})
            results.record(status)
            done.append(status)
        self.report.extend(done)
        return done


def build_now(names: Sequence[str], *, steps: Sequence[Step] = STEPS) -> list[ResultStatus]:
    """Run the named steps on the current generation, read-only, as the second stage does
    (e.g. the first run's search index, built after the app has opened). Steps that write
    into the graph cannot run on a published embedded generation and are refused."""
    from graph.store import open_store

    chosen = [s for s in steps if s.name in set(names)]
    writing = sorted(s.name for s in chosen if s.name in GRAPH_STEPS)
    if writing:
        raise ValueError(f"{', '.join(writing)} write(s) into the graph: they run with an ingest")
    store = open_store(read_only=True)
    try:
        return Refresh([Step(s.name, AFTER_PUBLISH, s.run) for s in chosen]).after_publish(
            store, store.generation())
    finally:
        store.close()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 2)
