"""Embedded graph generations: how a cron ingest and the running dashboard share one folder.

A Kùzu file admits one read-write process *or* readers, never both. So ingest never writes the
file the dashboard reads. It writes a staging copy, then switches the `CURRENT` pointer with an
atomic rename; readers notice the pointer changed and reopen. Layout under the root folder:

    CURRENT                 name of the live generation (atomic os.replace)
    gen-<stamp>/graph.kuzu  live and recent generations (the last `keep` are kept)
    staging-<run>/          an ingest in progress: graph.kuzu + checkpoint.json
    ingest.lock             held (flock) by the one ingest allowed at a time
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from graph.errors import GraphError

GRAPH_FILE = "graph.kuzu"
CHECKPOINT_FILE = "checkpoint.json"
#: marker of a generation whose derived results are all built (see analytics.results)
RESULTS_COMPLETE = "results/COMPLETE"


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
        """A staging folder left by an interrupted ingest, if any (newest first)."""
        stagings = sorted(self.root.glob("staging-*"), key=lambda p: p.stat().st_mtime)
        return stagings[-1] if stagings else None

    def new_staging(self, run_id: str, *, copy_current: bool = True) -> Path:
        """Create staging-<run>/ holding a copy of the live graph (or nothing: a first load)."""
        staging = self.root / f"staging-{run_id}"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        current = self.current_path()
        if copy_current and current is not None:
            for src in (current, current.with_name(GRAPH_FILE + ".wal")):
                if src.exists():
                    shutil.copy2(src, staging / src.name)
        return staging / GRAPH_FILE

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def publish(self, staging: Path) -> str:
        """Make a finished staging folder the live generation; prune old ones."""
        name = time.strftime("gen-%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 10**6:06d}"
        final = self.root / name
        os.replace(staging, final)
        tmp = self.root / "CURRENT.tmp"
        tmp.write_text(name)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.root / "CURRENT")
        self._prune(current=name)
        return name

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
