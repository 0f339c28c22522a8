"""The console's worker process: runs user Cypher away from the app, one query at a time.

Started by `graph.sandbox.ConsoleSandbox` with a clean environment (no secrets) and spoken
to over stdin/stdout in length-prefixed frames:

    parent → worker   JSON: first the `init` (what to open, limits), then one request per
                      query {"query", "row_cap", "timeout_s", "max_bytes", "chunk_rows"}
    worker → parent   pickle (read back by `load_frame`, which accepts plain data only):
                      {"ready": …} once, then per query zero or more {"rows": […]} chunks
                      and one final {"done": …} or {"failed": kind, "message": …}

The worker opens its own read-only connection, then locks itself down (`graph.sandbox_os`:
Landlock, rlimits, death with the parent) before it reads the first query. For each query
it asks the engine for the plan of exactly that statement, refuses anything that is not a
pure read (`graph.sandbox_plan`), and only then runs the same statement.
Memory, wall-clock and crash limits are enforced from outside, by the parent.

Nothing heavy is imported at module level: the parent imports the framing helpers too.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import os
import pickle
import struct
import sys
import time
from decimal import Decimal
from typing import Any, BinaryIO

_HEADER = struct.Struct(">I")
MAX_REQUEST_BYTES = 1 << 20
#: the only engines the worker will import (their Python packages)
EMBEDDED_ENGINES = ("kuzu", "ladybug")


# -- framing (shared with the parent) --------------------------------------------------------
def write_frame(stream: BinaryIO, payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def read_frame(stream: BinaryIO, limit: int = MAX_REQUEST_BYTES) -> bytes | None:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    if size > limit:
        raise ValueError(f"frame of {size} bytes exceeds {limit}")
    body = stream.read(size)
    return body if len(body) == size else None


_ALLOWED_GLOBALS = {("datetime", "datetime"), ("datetime", "date"), ("datetime", "time"),
                    ("datetime", "timedelta"), ("datetime", "timezone"),
                    ("decimal", "Decimal")}


class _DataUnpickler(pickle.Unpickler):
    """Plain data only: builtin containers and scalars, dates and times, Decimal."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"the worker sent a {module}.{name}: refused")


def load_frame(payload: bytes) -> Any:
    """Decode a worker frame; refuses anything but plain data."""
    return _DataUnpickler(io.BytesIO(payload)).load()


def dump_frame(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=5)


#: a node's or relation's internal keys, as Kùzu names them (LadybugDB upper-cases them)
_INTERNAL_KEYS = {"_ID": "_id", "_LABEL": "_label", "_SRC": "_src", "_DST": "_dst"}


def plain(value: Any) -> Any:
    """A query value as plain data the parent accepts (unknown types become text)."""
    if value is None or isinstance(value, (bool, int, float, str, bytes, Decimal,
                                           dt.date, dt.time, dt.timedelta)):
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(dt.timezone.utc)
        return value
    if isinstance(value, dict):
        return {_INTERNAL_KEYS.get(str(k), str(k)): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return str(value)


# -- the backends -------------------------------------------------------------------------
class _Refused(Exception):
    pass


class EmbeddedBackend:
    """Kùzu or LadybugDB: its own read-only Database and Connection."""

    def __init__(self, init: dict[str, Any]):
        import importlib
        import warnings

        warnings.simplefilter("ignore")  # prepare() is "deprecated": we need it (see run)
        name = init["engine"]
        if name not in EMBEDDED_ENGINES:
            raise ValueError(f"unknown embedded engine {name!r}")
        self.engine = importlib.import_module(name)
        self.path = init["path"]
        self.db = self.engine.Database(
            self.path, read_only=True, buffer_pool_size=int(init["buffer_pool_mb"]) << 20,
            max_num_threads=int(init["threads"]), max_db_size=int(init["max_db_bytes"]))
        self.conn = self.engine.Connection(self.db, num_threads=int(init["threads"]))
        from graph.sandbox_plan import check_kuzu_plan, kuzu_plan_operators

        self._operators, self._check = kuzu_plan_operators, check_kuzu_plan
        self.conn.execute("RETURN 1").get_all()  # warm the connection up

    def describe(self) -> str:
        return f"{self.engine.__name__} {getattr(self.engine, '__version__', '?')}"

    def read_paths(self) -> list[str]:
        return []  # not even the database file: the engine keeps it open

    def _prepare(self, text: str):
        stmt = self.conn.prepare(text)  # refuses more than one statement, runs nothing
        if not stmt.is_success():
            raise RuntimeError(stmt.get_error_message())
        return stmt

    def run(self, text: str, params: dict[str, Any], timeout_s: float, row_cap: int,
            emit) -> dict[str, Any]:
        self.conn.set_query_timeout(max(1, int(timeout_s * 1000)))
        try:
            statement = self._prepare(text)  # parse, bind and plan; errors quote `text`
            explained = self.conn.execute(self._prepare("EXPLAIN " + text), params)
            operators = self._operators(str(explained.get_next()[0]))
            self._check(operators)
            result = self.conn.execute(statement, params)  # the statement just explained
            columns = list(result.get_column_names())
            count = 0
            while result.has_next() and count < row_cap:
                chunk = []
                while result.has_next() and count < row_cap and len(chunk) < emit.chunk_rows:
                    chunk.append([plain(v) for v in result.get_next()])
                    count += 1
                emit(chunk)
            truncated = result.has_next()
        finally:
            self.conn.set_query_timeout(0)
        return {"columns": columns, "truncated": truncated,
                "operators": [op.name for op in operators]}


class Neo4jBackend:
    """Neo4j through the official driver: a READ session, an explicit transaction with the
    server-side timeout, `EXPLAIN` first, then the same text."""

    def __init__(self, init: dict[str, Any]):
        import neo4j

        from graph.neo4j_store import to_python
        from graph.sandbox_plan import check_neo4j_plan, neo4j_plan_operators

        self.neo4j, self.to_python = neo4j, to_python
        self._operators, self._check = neo4j_plan_operators, check_neo4j_plan
        auth = tuple(init["auth"]) if init.get("auth") else None
        self.driver = neo4j.GraphDatabase.driver(init["uri"], auth=auth,
                                                 user_agent="hub-atlas-console")
        self.database = init.get("database") or None
        self.driver.verify_connectivity()

    def describe(self) -> str:
        return "neo4j"

    def read_paths(self) -> list[str]:
        return [p for p in ("/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf",
                            "/etc/ssl", "/etc/pki") if os.path.exists(p)]

    def run(self, text: str, params: dict[str, Any], timeout_s: float, row_cap: int,
            emit) -> dict[str, Any]:
        neo4j = self.neo4j
        with self.driver.session(database=self.database, default_access_mode=neo4j.READ_ACCESS,
                                 fetch_size=min(row_cap + 1, 1000)) as session:
            with session.begin_transaction(timeout=timeout_s) as tx:
                summary = tx.run("EXPLAIN " + text, params).consume()
                operators = self._operators(summary.plan)
                self._check(operators, summary.query_type)
                result = tx.run(text, params)
                columns = list(result.keys())
                chunk, count, truncated = [], 0, False
                for record in result:
                    if count >= row_cap:
                        truncated = True
                        break
                    chunk.append([plain(self.to_python(v)) for v in record.values()])
                    count += 1
                    if len(chunk) >= emit.chunk_rows:
                        emit(chunk)
                        chunk = []
                if chunk:
                    emit(chunk)
                tx.rollback()
        return {"columns": columns, "truncated": truncated,
                "operators": [op.name for op in operators]}


class _Emitter:
    """Sends row chunks to the parent, counting bytes against the request's limit."""

    def __init__(self, out: BinaryIO, max_bytes: int, chunk_rows: int):
        self.out, self.max_bytes, self.chunk_rows = out, max_bytes, chunk_rows
        self.sent = 0

    def __call__(self, rows: list[list[Any]]) -> None:
        payload = dump_frame({"rows": rows})
        self.sent += len(payload)
        if self.sent > self.max_bytes:
            raise _TooLarge(self.sent)
        write_frame(self.out, payload)


class _TooLarge(Exception):
    pass


def _classify(exc: BaseException) -> tuple[str, str, str]:
    """(kind, layer, message) of a failed query. kind: refused, timeout, too_large or
    error; layer (for refusals): plan, engine or os."""
    from graph.errors import QueryRefused, QueryTimeout

    text = str(exc).strip() or type(exc).__name__
    low = text.lower()
    if isinstance(exc, _TooLarge):
        return "too_large", "", f"the result passed {exc.args[0] / 2**20:.0f} MB"
    if isinstance(exc, QueryRefused):
        return "refused", "plan", text
    if isinstance(exc, QueryTimeout) or "interrupted" in low or "timed out" in low or \
            "timeout" in low or "TransactionTimedOut" in text:
        return "timeout", "", text
    if "multiple statements" in low:
        return "refused", "engine", ("Refused: more than one statement; the console runs one "
                                     "read-only statement at a time.")
    if "read-only database" in low or "ForbiddenOnReadOnly" in text or "AccessMode" in text:
        return "refused", "engine", f"Refused by the engine: the graph is open read-only ({text})"
    if "permission denied" in low or low.startswith("io exception"):
        return "refused", "os", (f"Refused by the operating system: the console's worker may "
                                 f"not touch files ({text})")
    return "error", "", text


def _vm_size() -> int:
    """This process's virtual size in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def main() -> int:
    from graph import sandbox_os

    sandbox_os.die_with_parent()
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames on the protocol stream
    try:
        os.nice(10)  # the app's own threads come first
    except OSError:
        pass
    raw = read_frame(inp)
    if raw is None:
        return 1
    init = json.loads(raw)
    try:
        backend = (Neo4jBackend(init) if init["kind"] == "neo4j" else EmbeddedBackend(init))
        vm = _vm_size() if init.get("address_space_limit", True) else 0
        address_space = vm + int(init["max_rss_bytes"]) if vm else None
        reads = backend.read_paths() + list(init.get("python_paths", []))
        abi = sandbox_os.restrict_self(reads, tcp_ports=init.get("tcp_ports", []))
        sandbox_os.limit_resources(address_space_bytes=address_space)
        isolation = sandbox_os.Isolation(
            abi, files=abi >= 1, network=abi >= 4, signals=abi >= 6,
            address_space_mb=(address_space >> 20) if address_space else None,
            tcp_ports=tuple(init.get("tcp_ports", [])))
    except Exception as e:  # noqa: BLE001 - reported to the parent, which shows it
        write_frame(out, dump_frame({"ready": False, "message": f"{type(e).__name__}: {e}"}))
        return 1
    write_frame(out, dump_frame({"ready": True, "pid": os.getpid(), "engine": backend.describe(),
                                 "isolation": isolation.describe(),
                                 "landlock_abi": isolation.landlock_abi}))
    while True:
        raw = read_frame(inp)
        if raw is None:
            return 0
        req = json.loads(raw)
        emit = _Emitter(out, int(req["max_bytes"]), int(req.get("chunk_rows", 5000)))
        started = time.perf_counter()
        try:
            done = backend.run(req["query"], dict(req.get("params") or {}),
                               float(req["timeout_s"]), int(req["row_cap"]), emit)
        except Exception as e:  # noqa: BLE001 - every failure is a message to the parent
            kind, layer, message = _classify(e)
            write_frame(out, dump_frame({"failed": kind, "layer": layer, "message": message,
                                         "seconds": time.perf_counter() - started}))
            continue
        done["seconds"] = time.perf_counter() - started
        write_frame(out, dump_frame({"done": done}))


if __name__ == "__main__":
    raise SystemExit(main())
