"""The console's runner: user Cypher in a separate, locked-down worker process.

A query typed into the console (or given to `python -m graph query`) never runs in the
app's process or on its shared connection. `ConsoleSandbox.run` hands it to a worker
(`graph.sandbox_worker`) that

- was started with a clean environment (no HF_TOKEN, NEO4J_PASSWORD, … : Neo4j credentials
  travel over its stdin, never its environment) and opened its own read-only connection,
- then locked itself down: Landlock (no file opened but Python's own, read-only — not even
  the graph's folder: its database file is open already; no writes, no TCP but Neo4j's Bolt
  port, no signals to other processes), no core dumps, no file growth, an address-space
  backstop, SIGKILL when the app dies, a lower CPU priority,
- asks the engine for the plan of exactly the statement it will run and refuses anything
  but pure reads (`graph.sandbox_plan`), then runs that same statement.

From outside, the parent enforces what the worker cannot enforce on itself: a wall-clock
kill covering parsing and planning too (the engine's own timeout only covers execution),
and a ceiling on the worker's resident memory, watched every few milliseconds (the engine
reserves terabytes of virtual memory, so RLIMIT_AS alone cannot be the limit). A worker
that crashes, runs out of memory or time is killed and replaced; the caller gets a clear
`ConsoleFailure` and nothing else in the app notices. Other sessions' queries never wait on
a console query: the app's connection is not involved, and each running console query has
its own worker (up to `max_workers`; beyond that the console says it is busy).

Workers are kept warm (one idle worker per sandbox, restarted after a kill) because
starting one costs ~0.3–1 s; a sandbox belongs to one graph generation, so the page keys
it by generation and closes it when ingest publishes a new one.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from graph.errors import GraphError, QueryError, QueryRefused, QueryTimeout
from graph.sandbox_worker import load_frame, write_frame

REPO = Path(__file__).resolve().parent.parent

#: environment variables a worker gets (nothing else crosses: no tokens, no passwords)
_WORKER_ENV_KEEP = ("LANG", "LC_ALL", "TZ")


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def _env_float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


@dataclass(frozen=True)
class SandboxLimits:
    """What one console query may use."""

    #: wall clock, parsing and planning included
    timeout_s: float = field(default_factory=lambda: _env_float("HUBATLAS_CONSOLE_TIMEOUT_S",
                                                                10.0))
    max_rss_mb: int = field(default_factory=lambda: _env_int("HUBATLAS_CONSOLE_MAX_MB", 2048))
    max_chars: int = 10_000  # the engine's parser is superlinear in nesting and length
    max_depth: int = 32  # brackets ( [ { open at once, counted over the raw text
    max_result_mb: int = 64  # rows sent back to the app
    buffer_pool_mb: int = field(
        default_factory=lambda: _env_int("HUBATLAS_CONSOLE_BUFFER_MB", 512))
    #: engine threads per worker: half the cores, so a console query leaves the app a core
    threads: int = field(default_factory=lambda: max(1, (os.cpu_count() or 2) // 2))
    grace_s: float = 1.0  # after timeout_s the engine gets this long to stop by itself
    #: embedded engine: an RLIMIT_AS of (address space after opening + max_rss_mb), so an
    #: allocation past the ceiling fails in the engine at once (the RSS watchdog stays the
    #: limit that always holds; tests switch this off to exercise it alone)
    address_space_backstop: bool = True
    start_timeout_s: float = 60.0  # a worker must open the graph within this

    def __post_init__(self) -> None:
        if not self.timeout_s > 0 or self.max_rss_mb < 128 or self.max_chars < 1 or \
                self.max_depth < 1 or self.max_result_mb < 1:
            raise ValueError(f"invalid console limits: {self}")


@dataclass(frozen=True)
class SandboxTarget:
    """What a worker opens: an embedded graph file, or a Neo4j database."""

    kind: str  # "embedded" or "neo4j"
    path: str = ""  # embedded: the generation's database file
    engine: str = ""  # embedded: the engine's Python package ("kuzu", "ladybug")
    uri: str = ""
    auth: tuple[str, str] | None = field(default=None, repr=False)
    database: str | None = None

    @classmethod
    def embedded(cls, path: Path | str, engine: str | None = None) -> "SandboxTarget":
        return cls("embedded", path=str(Path(path).resolve()),
                   engine=engine or embedded_engine_name())

    @classmethod
    def neo4j_from_env(cls) -> "SandboxTarget":
        from graph.neo4j_store import env_settings

        uri, auth, database = env_settings()
        return cls("neo4j", uri=uri, auth=tuple(auth) if auth else None, database=database)

    @classmethod
    def current(cls, root: Path | None = None) -> "SandboxTarget":
        """The configured graph: Neo4j when NEO4J_URI is set, else the live generation."""
        from graph.errors import GraphEmpty
        from graph.generations import Generations
        from graph.store import db_root, neo4j_configured

        if neo4j_configured():
            return cls.neo4j_from_env()
        gens = Generations(root or db_root())
        path = gens.current_path()
        if path is None:
            raise GraphEmpty(f"no graph yet in {gens.root}: run `python -m ingest run` first")
        return cls.embedded(path)

    @classmethod
    def for_store(cls, store: Any) -> "SandboxTarget":
        """The graph an open store reads (its file, or the configured Neo4j)."""
        if store.dialect.server:
            return cls.neo4j_from_env()
        return cls.embedded(store.path)

    def init_message(self, limits: SandboxLimits) -> dict[str, Any]:
        msg: dict[str, Any] = {"kind": self.kind, "max_rss_bytes": limits.max_rss_mb << 20,
                               "python_paths": _python_paths()}
        if self.kind == "neo4j":
            msg.update(uri=self.uri, auth=list(self.auth) if self.auth else None,
                       database=self.database, tcp_ports=[_bolt_port(self.uri)],
                       address_space_limit=False)
        else:
            size = Path(self.path).stat().st_size if Path(self.path).exists() else 0
            msg.update(engine=self.engine, path=self.path, buffer_pool_mb=limits.buffer_pool_mb,
                       threads=limits.threads, max_db_bytes=_max_db_bytes(size),
                       address_space_limit=limits.address_space_backstop)
        return msg


def embedded_engine_name() -> str:
    """The Python package of the embedded engine the app's store uses ("kuzu" or
    "ladybug"): the worker imports the same one."""
    try:
        from graph.engine import engine  # the engine switch, where the tree has one

        return engine().module.__name__
    except ImportError:
        from graph import kuzu_store

        for value in vars(kuzu_store).values():
            if getattr(value, "__name__", "") in ("kuzu", "ladybug") and hasattr(
                    value, "Database"):
                return value.__name__
    raise GraphError("cannot tell which embedded engine graph.kuzu_store uses")


def _max_db_bytes(file_size: int) -> int:
    """The engine's virtual reservation for the file: a power of two ≥ 2× the file, ≥ 1 GiB."""
    need = max(1 << 30, 2 * file_size)
    return 1 << (need - 1).bit_length()


def _bolt_port(uri: str) -> int:
    from urllib.parse import urlsplit

    try:
        return urlsplit(uri).port or 7687
    except ValueError:
        return 7687


def _python_paths() -> list[str]:
    """What a worker may read after lock-down: the interpreter's own files and this package
    (not the repository root: it may hold a .env)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(REPO / "graph")}
    paths.update(p for p in sys.path if p and "site-packages" in p)
    return sorted(p for p in paths if p and os.path.exists(p))


# -- results and failures -----------------------------------------------------------------------
@dataclass
class ConsoleResult:
    frame: pd.DataFrame
    truncated: bool  # more rows than the cap existed
    seconds: float
    row_cap: int
    operators: tuple[str, ...] = ()  # the checked plan's operators


class ConsoleFailure(GraphError):
    """The worker was stopped or died; the app and other sessions are unaffected."""


class QueryOutOfMemory(ConsoleFailure):
    """The query's worker passed the memory ceiling and was killed."""


class WorkerCrashed(ConsoleFailure):
    """The worker died while running the query (e.g. a crash in the engine)."""


class ConsoleBusy(ConsoleFailure):
    """Every console worker is running a query."""


class ResultTooLarge(QueryError):
    """The rows would pass the size limit of what the worker sends back."""


def check_text_limits(query: str, limits: SandboxLimits) -> None:
    """Size and nesting limits on the raw text (before any engine sees it). Brackets are
    counted everywhere, literals included: an over-count can only refuse, never admit."""
    if len(query) > limits.max_chars:
        raise QueryRefused(f"Refused: the query has {len(query):,} characters; the console "
                           f"takes at most {limits.max_chars:,}.")
    depth = deepest = 0
    for ch in query:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth = max(0, depth - 1)
    if deepest > limits.max_depth:
        raise QueryRefused(f"Refused: brackets nest {deepest} deep; the console takes at most "
                           f"{limits.max_depth} (deep nesting makes the engine's parser "
                           "exponentially slow or crash).")


# -- one worker ---------------------------------------------------------------------------------
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "import graph.sandbox_worker as w; raise SystemExit(w.main())")


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        try:
            import psutil

            return psutil.Process(pid).memory_info().rss
        except Exception:  # noqa: BLE001 - the process is gone
            return 0


class _Worker:
    def __init__(self, target: SandboxTarget, limits: SandboxLimits):
        self.limits = limits
        env = {k: os.environ[k] for k in _WORKER_ENV_KEEP if k in os.environ}
        env.update(PATH="/usr/bin:/bin", HOME="/nonexistent", PYTHONDONTWRITEBYTECODE="1",
                   PYTHONNOUSERSITE="1", MALLOC_ARENA_MAX="2", LANG=env.get("LANG", "C.UTF-8"))
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOT, str(REPO)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd="/",
            close_fds=True, start_new_session=True)
        self.started = time.monotonic()
        self.ready: dict[str, Any] | None = None
        self.queries = 0
        self.baseline_rss = 0
        self._buf = bytearray()
        self._send(json.dumps(target.init_message(limits)).encode())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss(self) -> int:
        return _rss_bytes(self.proc.pid)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def _send(self, payload: bytes) -> None:
        try:
            write_frame(self.proc.stdin, payload)
        except (BrokenPipeError, OSError) as e:
            raise WorkerCrashed(f"the console worker is gone ({e})") from e

    def _frames(self, deadline: float, max_bytes: int):
        """Frames from the worker until the caller stops, watching time and memory."""
        fd = self.proc.stdout.fileno()
        ceiling = self.limits.max_rss_mb << 20
        while True:
            while len(self._buf) >= 4:
                size = int.from_bytes(self._buf[:4], "big")
                if size > max_bytes + (1 << 20):
                    self.kill()
                    raise ResultTooLarge(f"the worker sent a {size:,}-byte frame")
                if len(self._buf) < 4 + size:
                    break
                payload = bytes(self._buf[4:4 + size])
                del self._buf[:4 + size]
                yield load_frame(payload)
            now = time.monotonic()
            if now >= deadline:
                self.kill()
                raise _Deadline()
            ready, _, _ = select.select([fd], [], [], min(0.01, deadline - now))
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise _Died(self._exit_status())
                self._buf += chunk
            rss = self.rss()
            if rss > ceiling:
                self.kill()
                raise _OutOfMemory(rss)

    def _exit_status(self) -> str:
        try:
            code = self.proc.wait(2)
        except subprocess.TimeoutExpired:
            return "closed its output"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exited with status {code}"

    def wait_ready(self) -> dict[str, Any]:
        if self.ready is not None:
            return self.ready
        deadline = self.started + self.limits.start_timeout_s
        try:
            msg = next(self._frames(deadline, 1 << 20))
        except _Deadline:
            self.kill()
            raise ConsoleFailure("the console worker did not open the graph in "
                                 f"{self.limits.start_timeout_s:g} s") from None
        except (_Died, _OutOfMemory) as e:
            self.kill()
            raise ConsoleFailure(f"the console worker could not start ({e})") from None
        if not msg.get("ready"):
            self.kill()
            raise ConsoleFailure(f"the console worker could not open the graph: "
                                 f"{msg.get('message')}")
        self.ready = msg
        self.baseline_rss = self.rss()
        return msg

    def query(self, text: str, *, params: dict[str, Any] | None, row_cap: int,
              timeout_s: float, max_bytes: int
              ) -> tuple[list[str], list[list[Any]], dict[str, Any]]:
        self.wait_ready()
        self.queries += 1
        self._send(json.dumps({"query": text, "params": params or {}, "row_cap": row_cap,
                               "timeout_s": timeout_s, "max_bytes": max_bytes}).encode())
        deadline = time.monotonic() + timeout_s + self.limits.grace_s
        rows: list[list[Any]] = []
        for msg in self._frames(deadline, max_bytes):
            if "rows" in msg:
                rows.extend(msg["rows"])
            elif "done" in msg:
                done = msg["done"]
                return list(done["columns"]), rows, done
            elif "failed" in msg:
                raise _Failed(msg["failed"], msg.get("layer", ""), msg.get("message", ""))
            else:
                raise _Died("sent an unknown message")
        raise _Died("stopped answering")


class _Deadline(Exception):
    pass


class _Died(Exception):
    pass


class _OutOfMemory(Exception):
    pass


class _Failed(Exception):
    def __init__(self, kind: str, layer: str, message: str):
        super().__init__(message)
        self.kind, self.layer = kind, layer


# -- the pool -----------------------------------------------------------------------------------
class ConsoleSandbox:
    """Runs console queries in worker processes over one graph (see the module docstring).

    Thread-safe: Streamlit sessions call `run` from their own threads; each call gets a
    worker of its own, or `ConsoleBusy` when `max_workers` queries are already running.
    """

    def __init__(self, target: SandboxTarget, *, limits: SandboxLimits | None = None,
                 max_workers: int | None = None, warm: bool = True,
                 recycle_rss_mb: int = 256, precheck: bool = True):
        self.target = target
        self.limits = limits or SandboxLimits()
        self.max_workers = max_workers or max(1, _env_int("HUBATLAS_CONSOLE_WORKERS", 2))
        self.warm = warm
        self.recycle_rss_mb = recycle_rss_mb
        self.precheck = precheck
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._closed = False
        self.kills: dict[str, int] = {"timeout": 0, "memory": 0, "crash": 0, "recycled": 0}
        #: what the last worker that started could apply to itself (`Isolation.describe`),
        #: and its Landlock ABI (0: files and network not isolated); None until one started
        self.isolation: str | None = None
        self.landlock_abi: int | None = None
        if warm:
            self._spawn_idle()

    # -- pool plumbing --------------------------------------------------------------------------
    def _spawn_idle(self) -> None:
        with self._lock:
            if self._closed or self._idle or len(self._busy) >= self.max_workers:
                return
            self._idle.append(_Worker(self.target, self.limits))

    def _acquire(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise ConsoleFailure("the console was closed (the graph changed); run the "
                                     "query again")
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    break
                worker.kill()
            else:
                if len(self._busy) >= self.max_workers:
                    raise ConsoleBusy(f"all {self.max_workers} console workers are running "
                                      "queries; try again in a moment")
                worker = _Worker(self.target, self.limits)
            self._busy.add(worker)
            return worker

    def _release(self, worker: _Worker, *, dead: bool) -> None:
        recycle = not dead and (
            worker.rss() - worker.baseline_rss > (self.recycle_rss_mb << 20))
        with self._lock:
            self._busy.discard(worker)
            keep = not dead and not recycle and not self._closed and not self._idle
            if keep:
                self._idle.append(worker)
        if not keep:
            worker.kill()
            if recycle:
                self.kills["recycled"] += 1
        if self.warm and (dead or recycle):
            self._spawn_idle()

    def start(self) -> dict[str, Any]:
        """Start (if needed) and wait for one warm worker; returns its ready message."""
        self._spawn_idle()
        worker = self._acquire()
        try:
            ready = worker.wait_ready()
            self.isolation, self.landlock_abi = ready.get("isolation"), ready.get("landlock_abi")
            return ready
        finally:
            self._release(worker, dead=not worker.alive())

    def workers(self) -> list[int]:
        with self._lock:
            return [w.pid for w in (*self._idle, *self._busy)]

    def close(self) -> None:
        """Stop idle workers now; busy ones stop when their query ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()

    def __enter__(self) -> "ConsoleSandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
        with self._lock:
            busy = list(self._busy)
        for worker in busy:
            worker.kill()

    # -- running a query --------------------------------------------------------------------
    def run(self, query: str, *, params: dict[str, Any] | None = None, row_cap: int = 1000,
            timeout_s: float | None = None, max_result_mb: int | None = None
            ) -> ConsoleResult:
        """Run one read-only statement; at most `row_cap` rows. `params`: JSON values for
        `$name` parameters.

        Raises QueryRefused (not a pure read, or over the text limits), QueryTimeout,
        QueryError (the engine rejected it), ResultTooLarge, QueryOutOfMemory,
        WorkerCrashed or ConsoleBusy (all `GraphError`s)."""
        if row_cap < 1:
            raise ValueError(f"row_cap must be >= 1, got {row_cap}")
        if query is None or not query.strip():
            raise QueryRefused("Refused: the query is empty.")
        timeout_s = self.limits.timeout_s if timeout_s is None else float(timeout_s)
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        try:
            check_text_limits(query, self.limits)
        except QueryRefused as e:
            raise refused(str(e), "limits") from None
        if self.precheck:
            from graph.readonly import check_read_only

            try:
                check_read_only(query)  # the lexical first filter: clear messages, cheap
            except QueryRefused as e:
                raise refused(str(e), "lexical") from None
        max_bytes = (max_result_mb or self.limits.max_result_mb) << 20
        started = time.perf_counter()
        worker = self._acquire()
        dead = True
        try:
            try:
                columns, rows, done = worker.query(query, params=params, row_cap=row_cap,
                                                   timeout_s=timeout_s, max_bytes=max_bytes)
            except _Failed as e:
                dead = False
                raise _failure(e) from None
            except _Deadline:
                self.kills["timeout"] += 1
                raise QueryTimeout(
                    f"the query ran past {timeout_s:g} s and its worker was stopped (parsing "
                    "and planning count too)") from None
            except _OutOfMemory as e:
                self.kills["memory"] += 1
                raise QueryOutOfMemory(
                    f"the query needed more than {self.limits.max_rss_mb:,} MB (its worker "
                    f"reached {e.args[0] / 2**20:,.0f} MB) and was stopped") from None
            except _Died as e:
                self.kills["crash"] += 1
                raise WorkerCrashed(f"the query crashed its worker ({e}); the app is "
                                    "unaffected") from None
            dead = False
        finally:
            if worker.ready:
                self.isolation = worker.ready.get("isolation")
                self.landlock_abi = worker.ready.get("landlock_abi")
            self._release(worker, dead=dead or not worker.alive())
        frame = pd.DataFrame(rows, columns=columns) if columns else pd.DataFrame(rows)
        return ConsoleResult(frame, bool(done.get("truncated")), time.perf_counter() - started,
                             row_cap, tuple(done.get("operators", ())))


def refused(message: str, layer: str) -> QueryRefused:
    """A `QueryRefused` that says which layer refused: limits, lexical, plan, engine, os."""
    error = QueryRefused(message if message.startswith("Refused") else f"Refused: {message}")
    error.layer = layer
    return error


def _failure(e: _Failed) -> GraphError:
    message = str(e)
    if e.kind == "refused":
        return refused(message, e.layer or "engine")
    if e.kind == "timeout":
        return QueryTimeout(message)
    if e.kind == "too_large":
        return ResultTooLarge(f"the result is too large to show ({message}); add a LIMIT or "
                              "return fewer columns")
    return QueryError(message)


def run_once(target: SandboxTarget, query: str, *, params: dict[str, Any] | None = None,
             row_cap: int = 1000, timeout_s: float | None = None,
             limits: SandboxLimits | None = None, max_result_mb: int | None = None
             ) -> ConsoleResult:
    """One query in a fresh worker that is stopped afterwards (the command line)."""
    with ConsoleSandbox(target, limits=limits, max_workers=1, warm=False) as sandbox:
        return sandbox.run(query, params=params, row_cap=row_cap, timeout_s=timeout_s,
                           max_result_mb=max_result_mb)
