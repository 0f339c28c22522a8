"""Neo4j 5 through the official `neo4j` driver: the `GraphStore` for a server, cluster or Aura.

Configuration (`Neo4jStore.from_env`):

- `NEO4J_URI`: `bolt://host:7687` (one server), `neo4j://host:7687` (routing: clusters, Aura),
  with `+s` / `+ssc` for TLS (`neo4j+s://xxxx.databases.neo4j.io`).
- `NEO4J_USER` (default `neo4j`) and `NEO4J_PASSWORD`; or `NEO4J_AUTH=none` for a server
  without authentication, or `NEO4J_AUTH=user/password` (the Neo4j Docker convention).
- `NEO4J_DATABASE`: optional; the server's default database otherwise.

One driver per store (thread-safe, pooled; `close()` closes it); a session per call, so the
store can be shared across Streamlit's threads. All sessions of a store share one bookmark
manager, so a read after a write sees it even on a cluster's followers. Driver exceptions
become `graph.errors` types in `_translate` only.

Timestamps: the shared queries write TIMESTAMP properties as `datetime($isoString)` (see
`graph.queries._cast`), which Neo4j stores as UTC `DateTime`s; reads turn them back into
naive UTC `datetime`s, as Kùzu returns them, so frames look the same on both backends.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import neo4j
import pandas as pd
import pyarrow as pa
from neo4j import GraphDatabase
from neo4j import exceptions as nex
from neo4j import graph as neo4j_graph
from neo4j import time as neo4j_time

from graph.dates import iso_utc, naive_utc
from graph.dialect import NEO4J
from graph.errors import GraphError, QueryError, QueryRefused, QueryTimeout
from graph.queries import LAST_FINISHED_RUN
from graph.schema import NODE_SPECS, NODES, REL_SPECS, RELS, Label, Rel
from graph.store import Generation, neo4j_generation

#: rows per `UNWIND $rows` batch of the bulk path, and a cap on one batch's estimated size
BATCH_ROWS = 1000
BATCH_BYTES = 1_000_000
#: how long the driver keeps retrying a managed transaction on transient errors (seconds)
MAX_RETRY_S = 15.0

#: property names the schema declares TIMESTAMP: written as ISO strings wrapped in datetime()
TIMESTAMP_KEYS = frozenset(name for spec in (*NODES, *RELS) for name, typ in spec.properties
                           if typ == "TIMESTAMP")
_SPACE_ISO = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}")


# -- Cypher for the Neo4j-only parts: schema and bulk load -------------------------------------
def constraint_name(label: Label) -> str:
    return f"hubatlas_{label.value.lower()}_id"


def schema_statements() -> list[str]:
    """A uniqueness constraint (which is also the lookup index) on `id` for every label."""
    return [f"CREATE CONSTRAINT {constraint_name(spec.label)} IF NOT EXISTS "
            f"FOR (n:`{spec.label.value}`) REQUIRE n.id IS UNIQUE" for spec in NODES]


def _value_expr(name: str, typ: str) -> str:
    return f"datetime(r.`{name}`)" if typ == "TIMESTAMP" else f"r.`{name}`"


def bulk_node_query(label: Label, columns: Iterable[str]) -> str:
    """`UNWIND $rows AS r MERGE (n:Label {id: r.id}) SET n.p = r.p, …` for the given columns.

    Columns must be properties of `label` in `graph.schema`; `id` is required.
    """
    label = Label(label)
    types = dict(NODE_SPECS[label].properties)
    columns = list(columns)
    unknown = [c for c in columns if c not in types]
    if unknown or "id" not in columns:
        raise QueryError(f"{label.value}: columns {columns} must include id and be among "
                         f"{list(types)} (unknown: {unknown})")
    sets = ", ".join(f"n.`{c}` = {_value_expr(c, types[c])}" for c in columns if c != "id")
    query = f"UNWIND $rows AS r MERGE (n:`{label.value}` {{id: r.id}})"
    return query + (f" SET {sets}" if sets else "")


def bulk_rel_query(rel: Rel, src: Label, dst: Label, columns: Iterable[str]) -> str:
    """`UNWIND $rows AS r MATCH (a {id: r.src}), (b {id: r.dst}) MERGE (a)-[e:REL]->(b) SET …`.

    Returns the number of rows that found both endpoints as `n`.
    """
    rel, src, dst = Rel(rel), Label(src), Label(dst)
    spec = REL_SPECS[rel]
    if (src, dst) not in spec.pairs:
        raise QueryError(f"{rel.value} does not connect {src.value} to {dst.value}")
    types = dict(spec.properties)
    columns = list(columns)
    unknown = [c for c in columns if c not in types]
    if unknown:
        raise QueryError(f"{rel.value}: unknown properties {unknown} (known: {list(types)})")
    sets = ", ".join(f"e.`{c}` = {_value_expr(c, types[c])}" for c in columns)
    return (f"UNWIND $rows AS r MATCH (a:`{src.value}` {{id: r.src}}) "
            f"MATCH (b:`{dst.value}` {{id: r.dst}}) MERGE (a)-[e:`{rel.value}`]->(b)"
            + (f" SET {sets}" if sets else "") + " RETURN count(e) AS n")


# -- values in and out -------------------------------------------------------------------------
def _timestamp_param(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, str) and _SPACE_ISO.match(value):
        # "2024-01-02 03:04:05" (Python's isoformat(sep=" "), which Kùzu takes) → Neo4j
        # needs the "T": its temporal parser rejects the space.
        return value.replace(" ", "T", 1)
    return value


def write_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Parameters of a write: values under TIMESTAMP property names (top level, or in the maps
    of a `$rows` list) become ISO strings for `datetime()`; other datetimes become UTC."""
    out: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if key in TIMESTAMP_KEYS:
            out[key] = _timestamp_param(value)
        elif isinstance(value, list) and value and isinstance(value[0], Mapping):
            out[key] = [{k: (_timestamp_param(v) if k in TIMESTAMP_KEYS else _param(v))
                         for k, v in row.items()} for row in value]
        else:
            out[key] = _param(value)
    return out


def _param(value: Any) -> Any:
    # A naive datetime is UTC here (as Kùzu's TIMESTAMP); sent naive, the driver would make it
    # a LocalDateTime, which never compares equal/less/greater to a stored DateTime.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    if isinstance(value, list):
        return [_param(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _param(v) for k, v in value.items()}
    return value


def read_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: _param(v) for k, v in (params or {}).items()}


def to_python(value: Any) -> Any:
    """A value from the driver as plain Python, shaped like Kùzu's results.

    DateTime → naive UTC `datetime`; LocalDateTime → naive `datetime`; Date → `date`;
    Time → `time`; Duration → `timedelta` (ISO string if it has months); lists and maps
    recursively; nodes → `{_id, _label, **props}`; relationships → `{_id, _label, _src,
    _dst, **props}`; paths → `{_nodes, _rels}`.
    """
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, neo4j_time.DateTime):
        try:
            native = value.to_native()
        except (ValueError, OverflowError):
            return value.iso_format()
        return naive_utc(native)
    if isinstance(value, (neo4j_time.Date, neo4j_time.Time)):
        try:
            return value.to_native()
        except (ValueError, OverflowError):
            return value.iso_format()
    if isinstance(value, neo4j_time.Duration):
        if value.months:
            return value.iso_format()
        return timedelta(days=value.days, seconds=value.seconds,
                         microseconds=value.nanoseconds // 1000)
    if isinstance(value, datetime):
        return naive_utc(value)
    if isinstance(value, (date, time, timedelta)):
        return value
    if isinstance(value, neo4j_graph.Node):
        labels = sorted(value.labels)
        return {"_id": value.element_id, "_label": labels[0] if len(labels) == 1 else labels,
                **{k: to_python(v) for k, v in value.items()}}
    if isinstance(value, neo4j_graph.Relationship):
        return {"_id": value.element_id, "_label": value.type,
                "_src": value.start_node.element_id if value.start_node is not None else None,
                "_dst": value.end_node.element_id if value.end_node is not None else None,
                **{k: to_python(v) for k, v in value.items()}}
    if isinstance(value, neo4j_graph.Path):
        return {"_nodes": [to_python(n) for n in value.nodes],
                "_rels": [to_python(r) for r in value.relationships]}
    if isinstance(value, (list, tuple)):
        return [to_python(v) for v in value]
    if isinstance(value, Mapping):
        return {k: to_python(v) for k, v in value.items()}
    return value


def arrow_rows(table: pa.Table, rename: Mapping[str, str] | None = None
               ) -> Iterator[dict[str, Any]]:
    """Rows of an Arrow table as parameter maps; timestamps as ISO strings (UTC)."""
    rename = rename or {}
    for row in table.to_pylist():
        yield {rename.get(k, k): (iso_utc(v) if isinstance(v, datetime) else v)
               for k, v in row.items()}


def batches(rows: Iterable[dict[str, Any]], *, max_rows: int, max_bytes: int
            ) -> Iterator[list[dict[str, Any]]]:
    """Group rows into batches of at most `max_rows` rows and about `max_bytes` (as JSON);
    a single larger row travels alone."""
    batch: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        n = len(json.dumps(row, default=str, ensure_ascii=False).encode())
        if batch and (len(batch) >= max_rows or size + n > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += n
    if batch:
        yield batch


# -- errors ------------------------------------------------------------------------------------
_TIMEOUT_CODES = ("Neo.ClientError.Transaction.TransactionTimedOut",
                  "Neo.ClientError.Transaction.TransactionTimedOutClientConfiguration",
                  "Neo.ClientError.Transaction.Terminated",
                  "Neo.ClientError.Transaction.LockClientStopped",
                  "Neo.TransientError.Transaction.Terminated",
                  "Neo.TransientError.Transaction.LockClientStopped")
_REFUSED_CODES = ("Neo.ClientError.Statement.AccessMode",
                  "Neo.ClientError.General.ForbiddenOnReadOnlyDatabase",
                  "Neo.ClientError.General.ReadOnly",
                  "Neo.ClientError.Transaction.ForbiddenDueToTransactionType")


def _translate(e: Exception, where: str = "") -> GraphError:
    """The one place where driver exceptions become `graph.errors` types."""
    if isinstance(e, GraphError):
        return e
    at = f" ({where})" if where else ""
    if isinstance(e, nex.Neo4jError):
        code = e.code or ""
        text = f"{e.message or e}{at}"
        if code in _TIMEOUT_CODES or "TimedOut" in code:
            return QueryTimeout(f"query interrupted: {text}")
        if code in _REFUSED_CODES:
            return QueryRefused(f"refused in a read-only transaction: {text}")
        if isinstance(e, nex.AuthError):
            return GraphError(f"Neo4j authentication failed{at}: check NEO4J_USER/NEO4J_PASSWORD "
                              f"(or NEO4J_AUTH): {e.message}")
        if isinstance(e, nex.Forbidden) or code == "Neo.ClientError.Security.Forbidden":
            return QueryRefused(f"not allowed: {text}")
        if isinstance(e, nex.ClientError):
            return QueryError(text)
        return GraphError(f"Neo4j error {code}: {text}")
    if isinstance(e, nex.ServiceUnavailable):
        return GraphError(f"Neo4j is unreachable{at}: {e} (is the server running and "
                          "NEO4J_URI right? neo4j:// needs a cluster or Aura, bolt:// one server)")
    if isinstance(e, nex.SessionExpired):
        return GraphError(f"the Neo4j connection was lost{at}: {e}")
    if isinstance(e, nex.ConfigurationError):
        return GraphError(f"bad Neo4j configuration{at}: {e}")
    if isinstance(e, TypeError) and "not supported" in str(e):
        return QueryError(f"a parameter has a type Neo4j cannot take{at}: {e}")
    if isinstance(e, nex.DriverError):
        return GraphError(f"Neo4j driver error{at}: {e}")
    return GraphError(f"{type(e).__name__}{at}: {e}")


def _translatable(e: BaseException) -> bool:
    # the driver raises a plain TypeError for a parameter value it cannot pack
    return isinstance(e, (nex.Neo4jError, nex.DriverError)) or (
        isinstance(e, TypeError) and "not supported" in str(e))


# -- the store ---------------------------------------------------------------------------------
class Neo4jStore:
    """`GraphStore` over a Neo4j 5 server, cluster or Aura instance.

    Parameters
    ----------
    driver : neo4j.Driver
        The driver to use; see `from_env` / `connect` to build one.
    database : str or None, default=None
        Database name; None uses the server's default (FalkorDB ignores it: pass None there).
    read_only : bool, default=True
        Refuse `write`, `bulk_insert_*` and `ensure_schema` before reaching the server.
    owns_driver : bool, default=True
        Whether `close()` closes the driver.
    batch_rows, batch_bytes : int
        Size of the bulk path's `UNWIND $rows` batches (rows, approximate JSON bytes).
    """

    dialect = NEO4J

    def __init__(self, driver: neo4j.Driver, *, database: str | None = None,
                 read_only: bool = True, owns_driver: bool = True,
                 batch_rows: int = BATCH_ROWS, batch_bytes: int = BATCH_BYTES):
        if batch_rows < 1 or batch_bytes < 1:
            raise ValueError(f"batch_rows and batch_bytes must be positive, got "
                             f"{batch_rows}, {batch_bytes}")
        self.driver = driver
        self.database = database or None
        self.read_only = read_only
        self.owns_driver = owns_driver
        self.batch_rows = batch_rows
        self.batch_bytes = batch_bytes
        self._bookmarks = GraphDatabase.bookmark_manager()

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def connect(cls, uri: str, *, auth: Any = None, database: str | None = None,
                read_only: bool = True, max_retry_s: float = MAX_RETRY_S,
                **kwargs: Any) -> "Neo4jStore":
        """A store with its own driver for `uri` (no connection is made until the first call)."""
        try:
            driver = GraphDatabase.driver(uri, auth=auth, user_agent="hub-atlas",
                                          max_transaction_retry_time=max_retry_s)
        except (ValueError, nex.ConfigurationError) as e:
            raise GraphError(f"bad NEO4J_URI {uri!r}: {e}") from e
        return cls(driver, database=database, read_only=read_only, **kwargs)

    @classmethod
    def from_env(cls, read_only: bool = True, **kwargs: Any) -> "Neo4jStore":
        """A store configured by NEO4J_URI, NEO4J_USER/NEO4J_PASSWORD or NEO4J_AUTH, and
        NEO4J_DATABASE (see the module docstring)."""
        uri, auth, database = env_settings()
        return cls.connect(uri, auth=auth, database=database, read_only=read_only, **kwargs)

    # -- plumbing ----------------------------------------------------------------------------
    def _session(self, access_mode: str, **kwargs: Any) -> neo4j.Session:
        return self.driver.session(database=self.database, default_access_mode=access_mode,
                                   bookmark_manager=self._bookmarks, **kwargs)

    def _refuse_if_read_only(self, what: str) -> None:
        if self.read_only:
            raise QueryRefused(f"{what}: this store was opened read-only")

    def _read(self, query: str, params: Mapping[str, Any] | None
              ) -> tuple[list[str], list[list[Any]]]:
        params = read_params(params)

        def work(tx: neo4j.ManagedTransaction) -> tuple[list[str], list[list[Any]]]:
            result = tx.run(query, params)
            return list(result.keys()), [[to_python(v) for v in rec.values()] for rec in result]

        try:
            with self._session(neo4j.READ_ACCESS) as session:
                return session.execute_read(work)
        except Exception as e:
            if _translatable(e):
                raise _translate(e, "read") from e
            raise

    def _write_tx(self, work: Callable[[neo4j.ManagedTransaction], Any], where: str) -> Any:
        try:
            with self._session(neo4j.WRITE_ACCESS) as session:
                return session.execute_write(work)
        except Exception as e:
            if _translatable(e):
                raise _translate(e, where) from e
            raise

    # -- reading -----------------------------------------------------------------------------
    def frame(self, query: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        cols, rows = self._read(query, params)
        return pd.DataFrame(rows, columns=cols)

    def rows(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        cols, rows = self._read(query, params)
        return [dict(zip(cols, r)) for r in rows]

    def run_read_only(self, query: str, params: dict[str, Any] | None, *, row_cap: int,
                      timeout_s: float) -> pd.DataFrame:
        """User Cypher: one explicit READ transaction that the server ends after `timeout_s`
        (never retried: a user query that fails should say so at once); at most `row_cap`
        rows are fetched, the rest discarded. Writes are refused by the server (AccessMode)."""
        if row_cap < 1:
            raise ValueError(f"row_cap must be >= 1, got {row_cap}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        params = read_params(params)
        try:
            with self._session(neo4j.READ_ACCESS, fetch_size=min(row_cap + 1, 1000)) as session:
                with session.begin_transaction(timeout=timeout_s) as tx:
                    result = tx.run(query, params)
                    cols = list(result.keys())
                    rows = []
                    for rec in result:
                        if len(rows) >= row_cap:
                            break
                        rows.append([to_python(v) for v in rec.values()])
                    tx.rollback()  # nothing to keep; also discards what was not fetched
        except Exception as e:
            if _translatable(e):
                raise _translate(e, "read-only query") from e
            raise
        return pd.DataFrame(rows, columns=cols)

    def node_count(self) -> int:
        return int(self.rows("MATCH (n) RETURN count(n) AS n")[0]["n"])

    def generation(self) -> Generation:
        """Named by the last finished ingest run: a Neo4j graph changes in place."""
        rows = self.rows(LAST_FINISHED_RUN)
        return neo4j_generation(rows[0]["id"] if rows else None)

    def server_agent(self) -> str:
        """The server's agent string, e.g. "Neo4j/5.26.0"."""
        try:
            if self.database is None:
                return self.driver.get_server_info().agent
            with warnings.catch_warnings():  # database= is "experimental" in driver 5.x
                warnings.simplefilter("ignore")
                return self.driver.get_server_info(database=self.database).agent
        except Exception as e:
            if _translatable(e):
                raise _translate(e, "server info") from e
            raise

    # -- writing -----------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Uniqueness constraints on `id` for every label (idempotent); no-op when read-only.

        Each is its own auto-commit statement: Neo4j does not mix schema and data changes in
        one transaction.
        """
        if self.read_only:
            return
        try:
            with self._session(neo4j.WRITE_ACCESS) as session:
                for stmt in schema_statements():
                    session.run(stmt).consume()
        except Exception as e:
            if _translatable(e):
                raise _translate(e, "ensure_schema") from e
            raise

    def write(self, queries: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """All statements in one write transaction: all or nothing (the driver retries the
        whole transaction on transient errors such as a leader switch)."""
        self._refuse_if_read_only("write")
        stmts = [(query, write_params(params)) for query, params in queries]
        if not stmts:
            return

        def work(tx: neo4j.ManagedTransaction) -> None:
            for query, params in stmts:
                tx.run(query, params).consume()

        self._write_tx(work, "write")

    def bulk_insert_nodes(self, label: Label, table: pa.Table) -> None:
        """MERGE the table's rows on `id`, setting its columns, one transaction per batch
        (idempotent; batches already committed stay if a later one fails)."""
        self._refuse_if_read_only("bulk_insert_nodes")
        if table.num_rows == 0:
            return
        query = bulk_node_query(label, table.column_names)
        for batch in batches(arrow_rows(table), max_rows=self.batch_rows,
                             max_bytes=self.batch_bytes):
            self._write_tx(lambda tx, b=batch: tx.run(query, {"rows": b}).consume(),
                           f"bulk_insert_nodes {Label(label).value}")

    def bulk_insert_rels(self, rel: Rel, src: Label, dst: Label, table: pa.Table) -> None:
        """MERGE one relation per row between existing `src`/`dst` nodes (`from`, `to` = ids),
        one transaction per batch. A batch naming a missing endpoint is rolled back and
        raises `QueryError` (as Kùzu's COPY fails); earlier batches stay."""
        self._refuse_if_read_only("bulk_insert_rels")
        if table.num_rows == 0:
            return
        missing = {"from", "to"} - set(table.column_names)
        if missing:
            raise QueryError(f"bulk_insert_rels: table lacks columns {sorted(missing)}")
        props = [c for c in table.column_names if c not in ("from", "to")]
        query = bulk_rel_query(rel, src, dst, props)
        where = f"bulk_insert_rels {Rel(rel).value}"

        def work(tx: neo4j.ManagedTransaction, batch: list[dict[str, Any]]) -> None:
            n = tx.run(query, {"rows": batch}).single(strict=True)["n"]
            if n != len(batch):
                raise QueryError(f"{where}: {len(batch) - n} of {len(batch)} rows name a "
                                 f"{Label(src).value} or {Label(dst).value} that does not exist")

        for batch in batches(arrow_rows(table, {"from": "src", "to": "dst"}),
                             max_rows=self.batch_rows, max_bytes=self.batch_bytes):
            self._write_tx(lambda tx, b=batch: work(tx, b), where)

    def close(self) -> None:
        if self.owns_driver:
            self.driver.close()


def env_settings(environ: Mapping[str, str] | None = None
                 ) -> tuple[str, Any, str | None]:
    """(uri, auth, database) from NEO4J_URI, NEO4J_USER/NEO4J_PASSWORD or NEO4J_AUTH and
    NEO4J_DATABASE; raises `GraphError` naming what is missing."""
    env = os.environ if environ is None else environ
    uri = (env.get("NEO4J_URI") or "").strip()
    if not uri:
        raise GraphError("NEO4J_URI is not set (e.g. bolt://localhost:7687)")
    auth_spec = (env.get("NEO4J_AUTH") or "").strip()
    auth: Any
    if auth_spec.lower() == "none":
        auth = None
    elif auth_spec:
        user, sep, password = auth_spec.partition("/")
        if not sep:
            raise GraphError("NEO4J_AUTH must be 'none' or 'user/password'")
        auth = (user, password)
    else:
        password = env.get("NEO4J_PASSWORD")
        if password is None:
            raise GraphError("set NEO4J_PASSWORD (and NEO4J_USER if not 'neo4j'), "
                             "or NEO4J_AUTH=none for a server without authentication")
        auth = (env.get("NEO4J_USER") or "neo4j", password)
    database = (env.get("NEO4J_DATABASE") or "").strip() or None
    return uri, auth, database
