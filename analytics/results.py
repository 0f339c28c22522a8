"""Derived results of one graph generation, stored as files beside it.

The scheduled job (`analytics.pipeline`) writes them after each ingest; pages only read them.
Layout, under `Generation.results_dir`:

    manifest.json          one entry per result: ok, built_at, seconds, error, detail
    COMPLETE               written when every step of the job succeeded
    <name>.parquet         a table (`save_frame` / `load_frame`)
    <name>.json            a small document (`save_json` / `load_json`)
    <name>.pkl             a fitted object (`save_object` / `load_object`; written only by the job)
    <name>/                a folder a result saves itself into (`folder`), e.g. the search index

Each file is written to a temporary name and renamed, so a reader never sees half a result.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from graph.generations import RESULTS_COMPLETE
from graph.store import Generation

MANIFEST = "manifest.json"
COMPLETE = Path(RESULTS_COMPLETE).name


@dataclass(frozen=True)
class ResultStatus:
    """How one derived result was built."""

    name: str
    ok: bool
    built_at: str
    seconds: float
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class Results:
    """The stored results of one generation (read by pages, written by the job)."""

    def __init__(self, generation: Generation):
        self.generation = generation
        self.dir = generation.results_dir

    def __repr__(self) -> str:
        return f"Results({self.generation.name!r})"

    # -- status -------------------------------------------------------------------------
    def status(self) -> dict[str, ResultStatus]:
        try:
            raw = json.loads((self.dir / MANIFEST).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return {name: ResultStatus(**entry) for name, entry in raw.items()}

    def ready(self, name: str) -> bool:
        entry = self.status().get(name)
        return bool(entry and entry.ok)

    @property
    def complete(self) -> bool:
        """Every step of the job succeeded for this generation (pruning keeps the newest such)."""
        return (self.dir / COMPLETE).exists()

    def record(self, status: ResultStatus) -> None:
        """Add or replace one result's entry in the manifest (the job is the only writer)."""
        entries = {n: asdict(s) for n, s in self.status().items()}
        entries[status.name] = asdict(status)
        self._write_text(MANIFEST, json.dumps(entries, indent=1, default=str))

    def mark_complete(self) -> None:
        self._write_text(COMPLETE, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    # -- values -------------------------------------------------------------------------
    def save_frame(self, name: str, frame: pd.DataFrame) -> Path:
        path = self.dir / f"{name}.parquet"
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
        return path

    def load_frame(self, name: str, columns: Iterable[str] | None = None) -> pd.DataFrame:
        return pd.read_parquet(self.dir / f"{name}.parquet",
                               columns=list(columns) if columns is not None else None)

    def save_json(self, name: str, value: Any) -> Path:
        return self._write_text(f"{name}.json", json.dumps(value, indent=1, default=str))

    def load_json(self, name: str) -> Any:
        return json.loads((self.dir / f"{name}.json").read_text())

    def save_object(self, name: str, value: Any) -> Path:
        path = self.dir / f"{name}.pkl"
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
        return path

    def load_object(self, name: str) -> Any:
        with open(self.dir / f"{name}.pkl", "rb") as fh:
            return pickle.load(fh)  # noqa: S301 - our own job wrote it, in our own folder

    def folder(self, name: str) -> Path:
        """The folder a result saves itself into (`<name>/`); build into `staging_folder`
        and `commit_folder` so readers never see a half-written one."""
        return self.dir / name

    def staging_folder(self, name: str) -> Path:
        tmp = self.dir / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        return tmp

    def commit_folder(self, name: str, staged: Path) -> Path:
        final = self.folder(name)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staged, final)
        return final

    def _write_text(self, file_name: str, text: str) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / file_name
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        return path


def generations_newest_first(current: Generation) -> list[Generation]:
    """`current`, then the older generations beside it that still exist, newest first."""
    parent = current.folder.parent
    pattern = "gen-*" if current.backend == "embedded" else "*"
    others = [p for p in parent.glob(pattern) if p.is_dir() and p != current.folder]
    others.sort(key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    return [current, *(Generation(current.backend, p.name, p) for p in others)]


@dataclass(frozen=True)
class Found:
    """A stored result and where it came from."""

    results: Results
    current: bool  # False: an older generation's (the current one's is not ready yet)


def find_ready(name: str, current: Generation) -> Found | None:
    """The newest generation's results holding `name` ready, starting at `current`."""
    for gen in generations_newest_first(current):
        results = Results(gen)
        if results.ready(name):
            return Found(results, gen == current)
    return None
