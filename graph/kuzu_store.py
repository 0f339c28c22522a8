"""The embedded default: LadybugDB (or Kùzu 0.11) in-process, one database file per generation.

The engine module comes from `graph.engine` (`HUBATLAS_ENGINE`); both engines share this code,
their Cypher dialect (`graph.dialect.KUZU`) and their Python API. A database written by the
other engine, another storage format or another schema is refused before the engine sees it
(`graph.generations.check_compatible`), and a writable open stamps the database's marker.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import pyarrow as pa

from graph.dialect import KUZU
from graph.engine import engine
from graph.errors import GraphError, QueryError, QueryTimeout
from graph.generations import EngineMarker, check_compatible
from graph.lineage_index import LineageIndex
from graph.schema import NODE_SPECS, NODES, REL_SPECS, RELS, Label, Rel
from graph.store import Generation

_BUFFER_MB = int(os.environ.get("HUBATLAS_KUZU_BUFFER_MB", "2048"))


def schema_ddl() -> list[str]:
    """CREATE statements for every node and relation table of `graph.schema`."""
    ddl = []
    for spec in NODES:
        cols = ", ".join(f"{name} {typ}" for name, typ in spec.properties)
        ddl.append(f"CREATE NODE TABLE IF NOT EXISTS {spec.label.value}"
                   f"({cols}, PRIMARY KEY ({spec.properties[0][0]}))")
    for spec in RELS:
        pairs = ", ".join(f"FROM {a.value} TO {b.value}" for a, b in spec.pairs)
        props = "".join(f", {name} {typ}" for name, typ in spec.properties)
        ddl.append(f"CREATE REL TABLE IF NOT EXISTS {spec.rel.value}({pairs}{props})")
    return ddl


_ARROW_TYPES = {"STRING": pa.string(), "INT64": pa.int64(), "BOOLEAN": pa.bool_(),
                "TIMESTAMP": pa.timestamp("us"), "STRING[]": pa.list_(pa.string()),
                "DOUBLE": pa.float64()}


def conform(table: pa.Table, columns: tuple[tuple[str, str], ...], lead: tuple[str, ...] = ()
            ) -> pa.Table:
    """Order `table`'s columns as the schema declares them, adding typed nulls for missing ones."""
    arrays, names = [], []
    for name in lead:
        arrays.append(table.column(name))
        names.append(name)
    for name, typ in columns:
        atype = _ARROW_TYPES[typ]
        if name in table.column_names:
            arrays.append(table.column(name).cast(atype))
        else:
            arrays.append(pa.nulls(table.num_rows, atype))
        names.append(name)
    return pa.table(arrays, names=names)


def _translate(e: Exception) -> GraphError:
    text = str(e)
    if "interrupted" in text.lower() or "timeout" in text.lower():
        return QueryTimeout(text)
    return QueryError(text)


class KuzuStore:
    """`GraphStore` over one database file of the embedded engine (LadybugDB or Kùzu).

    Such a file admits one read-write process or any number of read-only ones, so the app
    opens generations read-only and ingest writes a fresh generation (see `graph.generations`).
    """

    dialect = KUZU

    def __init__(self, path: Path | str, *, read_only: bool = True,
                 buffer_pool_mb: int = _BUFFER_MB):
        self.path = Path(path)
        self.read_only = read_only
        self.engine = engine()
        check_compatible(self.path)
        mod = self.engine.module
        try:
            self._db = mod.Database(str(self.path), read_only=read_only,
                                    buffer_pool_size=buffer_pool_mb * 1024 * 1024)
        except RuntimeError as e:
            raise GraphError(f"cannot open graph {self.path} with {self.engine.describe()}: "
                             f"{e}") from e
        self._conn = mod.Connection(self._db)
        # A connection is not safe for concurrent use; Streamlit runs sessions in threads.
        self._lock = threading.RLock()
        self._lineage: LineageIndex | None = None
        self._lineage_lock = threading.Lock()
        if not read_only:
            self.ensure_schema()
            EngineMarker.current().write(self.path)

    # -- reading -------------------------------------------------------------------------
    def _execute(self, query: str, params: dict[str, Any] | None = None):
        try:
            return self._conn.execute(query, params or {})
        except RuntimeError as e:
            raise _translate(e) from e

    def frame(self, query: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        with self._lock:
            result = self._execute(query, params)
            return result.get_as_df()  # columnar: ~1.5x faster than row by row on 760k rows

    def rows(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self._lock:
            result = self._execute(query, params)
            cols = result.get_column_names()
            out = []
            while result.has_next():
                out.append(dict(zip(cols, result.get_next())))
        return out

    def run_read_only(self, query: str, params: dict[str, Any] | None, *, row_cap: int,
                      timeout_s: float) -> pd.DataFrame:
        """User Cypher: never on this store's connection. It runs in a one-off sandboxed
        worker over the same file (`graph.sandbox`: the engine's plan must be a pure read,
        no files, no secrets, a memory ceiling and a wall-clock kill); at most `row_cap`
        rows. Keep a `graph.sandbox.ConsoleSandbox` for repeated queries (warm worker)."""
        from graph.sandbox import ConsoleSandbox, SandboxLimits, SandboxTarget

        limits = SandboxLimits(timeout_s=timeout_s)
        with ConsoleSandbox(SandboxTarget.embedded(self.path), limits=limits, max_workers=1,
                            warm=False, precheck=False) as sandbox:
            return sandbox.run(query, params=params, row_cap=row_cap).frame

    def node_count(self) -> int:
        return int(self.rows("MATCH (n) RETURN count(n) AS n")[0]["n"])

    def generation(self) -> Generation:
        folder = self.path.parent
        return Generation("embedded", folder.name, folder)

    def lineage_index(self) -> LineageIndex | None:
        """The lineage subgraph in memory, for `graph.queries`' lineage walks; None when the
        store is writable (its data can change). Loaded from the generation's saved results
        (`<generation>/results/lineage/`) when there, else read from the graph on first use."""
        if not self.read_only:
            return None
        with self._lineage_lock:
            if self._lineage is None:
                self._lineage = (LineageIndex.load(self.path.parent / "results")
                                 or LineageIndex.build(self))
            return self._lineage

    # -- writing -------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        with self._lock:
            for stmt in schema_ddl():
                self._execute(stmt)

    def write(self, queries: Sequence[tuple[str, dict[str, Any]]]) -> None:
        with self._lock:
            self._execute("BEGIN TRANSACTION")
            try:
                for query, params in queries:
                    self._execute(query, params)
            except BaseException:
                try:
                    self._conn.execute("ROLLBACK")
                except RuntimeError:
                    pass  # Kùzu already rolled back the failed statement's transaction
                raise
            self._execute("COMMIT")

    def bulk_insert_nodes(self, label: Label, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        with self._lock:
            rows = conform(table, NODE_SPECS[label].properties)  # noqa: F841
            # Kùzu's COPY … FROM rows scans the caller's local variable by that name.
            self._execute(f"COPY {label.value} FROM rows")

    def bulk_insert_rels(self, rel: Rel, src: Label, dst: Label, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        with self._lock:
            rows = conform(table, REL_SPECS[rel].properties, lead=("from", "to"))  # noqa: F841
            self._execute(f"COPY {rel.value} FROM rows (from='{src.value}', to='{dst.value}')")

    # -- raw bulk I/O (benchmarks, backups) ---------------------------------------------
    def export_parquet(self, folder: Path) -> list[Path]:
        """Every node and relation table to `folder/*.parquet`, in the schema's column order."""
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for spec in NODES:
            out = folder / f"node-{spec.label.value}.parquet"
            cols = ", ".join(f"n.{name} AS {name}" for name, _ in spec.properties)
            self._execute(f"COPY (MATCH (n:{spec.label.value}) RETURN {cols}) TO '{out}'")
            files.append(out)
        for spec in RELS:
            for src, dst in spec.pairs:
                out = folder / f"rel-{spec.rel.value}-{src.value}-{dst.value}.parquet"
                props = "".join(f", e.{name} AS {name}" for name, _ in spec.properties)
                self._execute(f"COPY (MATCH (a:{src.value})-[e:{spec.rel.value}]->(b:{dst.value}) "
                              f"RETURN a.id AS `from`, b.id AS `to`{props}) TO '{out}'")
                files.append(out)
        return files

    def import_parquet(self, folder: Path) -> None:
        """The engine's own bulk load of files written by `export_parquet` (empty graph)."""
        for spec in NODES:
            path = folder / f"node-{spec.label.value}.parquet"
            self._execute(f"COPY {spec.label.value} FROM '{path}'")
        for spec in RELS:
            for src, dst in spec.pairs:
                path = folder / f"rel-{spec.rel.value}-{src.value}-{dst.value}.parquet"
                self._execute(f"COPY {spec.rel.value} FROM '{path}' "
                              f"(from='{src.value}', to='{dst.value}')")

    def checkpoint(self) -> None:
        with self._lock:
            self._execute("CHECKPOINT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            self._db.close()
