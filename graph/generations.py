"""Embedded graph generations: how a cron ingest and the running dashboard share one folder.

An embedded database file admits one read-write process *or* readers, never both. So ingest
never writes the file the dashboard reads. It writes a staging copy, then switches the
`CURRENT` pointer with an atomic rename; readers notice the pointer changed and reopen.
Layout under the root folder:

    CURRENT                 name of the live generation (atomic os.replace)
    gen-<stamp>/graph.kuzu  live and recent generations (the last `keep` are kept), each with
                            graph.kuzu.engine.json: the engine, its version and the schema
                            that wrote it (`EngineMarker`)
    staging-<run>/          an ingest in progress: graph.kuzu + its marker + checkpoint.json
    ingest.lock             held (flock) by the one ingest allowed at a time

A database written by another engine (Kùzu vs LadybugDB), another storage format or another
graph schema is never handed to the engine: `check_compatible` refuses it first with a
`GraphIncompatible` that says what to do (re-ingest).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from graph.engine import ENGINES, engine, sniff
from graph.errors import GraphError
from graph.schema import NODES, RELS

GRAPH_FILE = "graph.kuzu"
CHECKPOINT_FILE = "checkpoint.json"
#: marker of a generation whose derived results are all built (see analytics.results)
RESULTS_COMPLETE = "results/COMPLETE"
MARKER_SUFFIX = ".engine.json"
_GEN_NAME = "gen-%Y%m%dT%H%M%S-%f"


class GraphIncompatible(GraphError):
    """The database was written by another engine, storage format or graph schema."""


def schema_version() -> str:
    """A short fingerprint of `graph.schema` (labels, relations, property names and types):
    it changes whenever the schema does, so a graph built for another schema is detected."""
    spec = [(n.label.value, n.properties) for n in NODES]
    spec += [(r.rel.value, [(a.value, b.value) for a, b in r.pairs], r.properties) for r in RELS]
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class EngineMarker:
    """What wrote a database: stored as `<db>.engine.json` beside the database file."""

    engine: str
    version: str
    storage_version: int
    schema: str

    @classmethod
    def current(cls) -> "EngineMarker":
        """The marker this process writes (the configured engine, the code's schema)."""
        e = engine()
        return cls(e.name, e.version, e.storage_version, schema_version())

    @staticmethod
    def path_for(db: Path) -> Path:
        return db.with_name(db.name + MARKER_SUFFIX)

    @classmethod
    def read(cls, db: Path) -> "EngineMarker | None":
        try:
            data = json.loads(cls.path_for(db).read_text())
            return cls(str(data["engine"]), str(data["version"]), int(data["storage_version"]),
                       str(data["schema"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def write(self, db: Path) -> None:
        tmp = self.path_for(db).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, self.path_for(db))

    def describe(self) -> str:
        return f"{self.engine} {self.version} (storage format {self.storage_version})"


def check_compatible(db: Path) -> None:
    """Raise `GraphIncompatible` unless this process's engine can open `db` (absent: fine).

    The file's own header says which engine and storage format wrote it (read without the
    engine, which would only fail with a bare error); the marker adds the engine's version
    and the schema. A database from before markers existed is checked by its header alone.
    """
    head = sniff(db)
    if head is None and not db.exists():
        return
    want = EngineMarker.current()
    marker = EngineMarker.read(db)
    if head is None:
        raise GraphIncompatible(f"{db} is not a database of any known engine "
                                f"({', '.join(ENGINES)}). {_reingest_hint(db)}")
    name, storage = head
    if (name, storage) != (want.engine, want.storage_version):
        who = (marker.describe() if marker and marker.engine == name
               else f"{name} (storage format {storage})")
        switch = (f", or set HUBATLAS_ENGINE={name} to keep reading it as it is"
                  if name != want.engine else "")
        raise GraphIncompatible(f"the graph in {db.parent} was written by {who}; this app runs "
                                f"{want.describe()}, which cannot open it. "
                                f"{_reingest_hint(db)}{switch}.")
    if marker is not None and marker.schema != want.schema:
        raise GraphIncompatible(f"the graph in {db.parent} was built for graph schema "
                                f"{marker.schema}; this code expects schema {want.schema}. "
                                f"{_reingest_hint(db)}.")


def _reingest_hint(db: Path) -> str:
    if not db.parent.name.startswith(("gen-", "staging-")):
        return f"Re-ingest it with this engine into a new file (or delete {db} first)"
    root = db.parent.parent
    return (f"Re-ingest to rebuild it with this engine: move {root / 'CURRENT'} aside (the next "
            f"`python -m ingest run …` is then a first load) or point HUBATLAS_DB at a new folder")


class WriterBusy(GraphError):
    """Another ingest holds the writer lock."""


class Generations:
    def __init__(self, root: Path | str, *, keep: int = 2):
        self.root = Path(root)
        self.keep = keep

    # -- readers -------------------------------------------------------------------------
    def current_name(self) -> str | None:
        try:
            name = (self.root / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def current_path(self) -> Path | None:
        name = self.current_name()
        if not name:
            return None
        path = self.root / name / GRAPH_FILE
        return path if path.exists() else None

    # -- the writer ----------------------------------------------------------------------
    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Exclusive for the whole ingest; a second cron job fails fast with WriterBusy."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "ingest.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                raise WriterBusy(f"another ingest is running on {self.root}") from e
            yield
        finally:
            os.close(fd)

    def pending_staging(self) -> Path | None:
        """A staging folder left by an interrupted ingest, if any (newest first).

        One written by another engine or schema cannot be resumed by this one: it is removed.
        """
        stagings = sorted(self.root.glob("staging-*"), key=lambda p: p.stat().st_mtime)
        while stagings:
            try:
                check_compatible(stagings[-1] / GRAPH_FILE)
                return stagings[-1]
            except GraphIncompatible:
                self.discard(stagings.pop())
        return None

    def new_staging(self, run_id: str, *, copy_current: bool = True) -> Path:
        """Create staging-<run>/ holding a copy of the live graph (or nothing: a first load).

        Raises `GraphIncompatible`, changing nothing, if the live graph was written by another
        engine or schema (it could be copied but never opened).
        """
        current = self.current_path()
        if copy_current and current is not None:
            check_compatible(current)
        staging = self.root / f"staging-{run_id}"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        if copy_current and current is not None:
            for src in (current, current.with_name(GRAPH_FILE + ".wal"),
                        EngineMarker.path_for(current)):
                if src.exists():
                    shutil.copy2(src, staging / src.name)
        return staging / GRAPH_FILE

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def publish(self, staging: Path) -> str:
        """Make a finished staging folder the live generation; prune old ones."""
        name = self._new_name()
        final = self.root / name
        os.replace(staging, final)
        tmp = self.root / "CURRENT.tmp"
        tmp.write_text(name)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.root / "CURRENT")
        self._prune(current=name)
        return name

    def _new_name(self) -> str:
        """gen-<UTC time to the microsecond>, later than every generation here: names sort in
        publish order, which `_prune` relies on (two publishes can fall in one second, and a
        clock can step back)."""
        when = datetime.now(timezone.utc)
        for path in self.root.glob("gen-*"):
            try:
                seen = datetime.strptime(path.name, _GEN_NAME).replace(tzinfo=timezone.utc)
            except ValueError:
                continue
            when = max(when, seen + timedelta(microseconds=1))
        return when.strftime(_GEN_NAME)

    def _prune(self, current: str) -> None:
        """Keep the live generation, the newest `keep`, and the newest one whose derived
        results are complete (pages show its results while the live one's are built)."""
        gens = sorted((p for p in self.root.glob("gen-*") if p.is_dir()), key=lambda p: p.name)
        keep = {current, *(p.name for p in gens[-self.keep:])}
        complete = [p for p in gens if (p / RESULTS_COMPLETE).exists()]
        if complete:
            keep.add(complete[-1].name)
        for path in gens:
            if path.name not in keep:
                # Readers that still hold an old file keep their open descriptors (POSIX unlink).
                shutil.rmtree(path, ignore_errors=True)

    # -- checkpoints ---------------------------------------------------------------------
    @staticmethod
    def read_checkpoint(staging: Path) -> dict | None:
        try:
            return json.loads((staging / CHECKPOINT_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    @staticmethod
    def write_checkpoint(staging: Path, state: dict) -> None:
        tmp = staging / (CHECKPOINT_FILE + ".tmp")
        tmp.write_text(json.dumps(state, default=str))
        os.replace(tmp, staging / CHECKPOINT_FILE)
