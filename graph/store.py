"""The `GraphStore` interface, and the one place that picks the backend from the environment.

- Default: the embedded engine (`HUBATLAS_ENGINE`: LadybugDB, or Kùzu 0.11.3; see
  `graph.engine`), data under `HUBATLAS_DB` (default `./data/graph`).
- `NEO4J_URI` set: Neo4j 5 through the official driver (`NEO4J_USER`, `NEO4J_PASSWORD`,
  `NEO4J_DATABASE`).

Everything above `graph/` talks to a `GraphStore` from `open_store` (or, for ingest writing a
generation, `open_embedded`); driver errors become `graph.errors` types.
"""
from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence, runtime_checkable

import pandas as pd
import pyarrow as pa

from graph.dialect import Dialect
from graph.schema import Label, Rel

DEFAULT_DB = Path(__file__).resolve().parent.parent / "data" / "graph"


@dataclass(frozen=True)
class Generation:
    """One published state of the graph: what the app reads, and what derived results belong to.

    Embedded: a `gen-<stamp>` folder under `HUBATLAS_DB` (a new one per ingest). Neo4j: the
    graph changes in place, so a generation is named by the last finished ingest run. Derived
    results (forecasts, search index, aggregates) live in `folder / "results"`.
    """

    backend: str  # "embedded" or "neo4j"
    name: str  # the gen-<stamp> folder, or the last finished IngestRun id ("" before any run)
    folder: Path

    @property
    def results_dir(self) -> Path:
        return self.folder / "results"

    @property
    def key(self) -> str:
        """A string that changes whenever the graph the app should read changes (cache key)."""
        return f"{self.backend}:{self.folder}"


@runtime_checkable
class GraphStore(Protocol):
    """What the rest of the app needs from a graph database.

    Optional: a store whose data cannot change under it (an embedded generation opened
    read-only) also offers `lineage_index() -> graph.lineage_index.LineageIndex | None`,
    which `graph.queries` uses for lineage walks instead of a query per level.
    """

    dialect: Dialect
    read_only: bool

    def ensure_schema(self) -> None: ...

    def frame(self, query: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Run a read query, return its rows as a DataFrame."""

    def rows(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a read query, return its rows as dicts."""

    def write(self, queries: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Run write statements in one transaction (all or nothing)."""

    def bulk_insert_nodes(self, label: Label, table: pa.Table) -> None:
        """Insert new nodes fast (first load): the engine's own bulk import."""

    def bulk_insert_rels(self, rel: Rel, src: Label, dst: Label, table: pa.Table) -> None:
        """Insert new relations fast; `table` has `from`, `to` and the relation's properties."""

    def run_read_only(self, query: str, params: dict[str, Any] | None, *, row_cap: int,
                      timeout_s: float) -> pd.DataFrame:
        """Run user Cypher in a read-only transaction with a row cap and a time limit."""

    def node_count(self) -> int: ...

    def generation(self) -> Generation:
        """The generation this store reads (embedded: its folder; Neo4j: the last finished run)."""

    def close(self) -> None: ...


def db_root() -> Path:
    """Folder that holds the embedded graph (its generations, lock and checkpoints)."""
    return Path(os.environ.get("HUBATLAS_DB") or DEFAULT_DB)


def neo4j_configured() -> bool:
    return bool(os.environ.get("NEO4J_URI"))


def neo4j_generation(run_id: str | None, uri: str | None = None) -> Generation:
    """The generation of a Neo4j graph whose last finished ingest run is `run_id`; its results
    live on this machine under `HUBATLAS_DB/neo4j-<hash of the URI>/<run id>`."""
    uri = uri if uri is not None else os.environ.get("NEO4J_URI", "")
    tag = hashlib.sha1(uri.encode()).hexdigest()[:10]
    name = run_id or ""
    return Generation("neo4j", name, db_root() / f"neo4j-{tag}" / (name or "none"))


def current_generation(store: "GraphStore | None" = None) -> Generation | None:
    """The generation the app should read now, or None when no graph has been published.

    Embedded: read from `HUBATLAS_DB/CURRENT` without opening the graph. Neo4j: asks `store`
    (one small query), since ingest changes the graph in place.
    """
    if neo4j_configured():
        if store is None:
            raise ValueError("current_generation needs the Neo4j store to ask")
        return store.generation()
    from graph.generations import Generations

    gens = Generations(db_root())
    name = gens.current_name()
    if not name or gens.current_path() is None:
        return None
    return Generation("embedded", name, gens.root / name)


def open_store(*, read_only: bool = True, root: Path | None = None) -> GraphStore:
    """Open the configured graph for reading (the app) or writing (ingest).

    Embedded: read_only opens the current generation; read_only=False is for ingest only and
    goes through `graph.generations`, which owns the writer side.
    """
    if neo4j_configured():
        from graph.neo4j_store import Neo4jStore

        return Neo4jStore.from_env(read_only=read_only)
    from graph.generations import Generations

    gens = Generations(root or db_root())
    path = gens.current_path()
    if path is None:
        if read_only:
            from graph.errors import GraphEmpty

            raise GraphEmpty(f"no graph yet in {gens.root}: run `python -m ingest run` first")
        path = gens.new_staging("adhoc")
    return open_embedded(path, read_only=read_only)


def open_embedded(path: Path | str, *, read_only: bool = False,
                  buffer_pool_mb: int | None = None) -> GraphStore:
    """The embedded engine's store over one database file (ingest: a staging generation).

    Raises `graph.generations.GraphIncompatible` if the file was written by another engine,
    storage format or schema, `graph.engine.EngineUnavailable` if `HUBATLAS_ENGINE` cannot be
    loaded. A writable open creates the file if needed and stamps its engine marker.
    """
    from graph.kuzu_store import KuzuStore

    if buffer_pool_mb is None:
        return KuzuStore(path, read_only=read_only)
    return KuzuStore(path, read_only=read_only, buffer_pool_mb=buffer_pool_mb)


@contextmanager
def store_or_open(store: GraphStore | None = None, *, root: Path | None = None
                  ) -> Iterator[GraphStore]:
    """Use the caller's store, or open the configured graph read-only and close it after."""
    if store is not None:
        yield store
        return
    opened = open_store(read_only=True, root=root)
    try:
        yield opened
    finally:
        opened.close()


def chunked(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
