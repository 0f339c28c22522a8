"""The first-run seed: a small graph for a newcomer, so the app never opens on an empty shell.

In order: the recorded snapshot named by `HUBATLAS_SNAPSHOT` (bounded by `HUBATLAS_SEED_LIMIT`
records per kind), else the live Hub when it answers within a few seconds, else the small
recorded sample shipped in the repository (`sample/`: real Hub metadata of a few dozen
complete model families). `app.py` calls `seed_first_run` once per process when no graph
has been published yet.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from graph.schema import SAMPLE_SOURCE_PREFIX
from graph.store import current_generation, neo4j_configured
from ingest.run import Refresher, RunReport, ingest
from ingest.sources import LiveHubSource, SnapshotSource

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample"
SEED_LIMIT_DEFAULT = 5000
HUB_PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class SeedReport:
    origin: str  # "snapshot", "hub" or "sample"
    report: RunReport
    note: str  # why this origin (e.g. the Hub was unreachable)


def seed_limit() -> int:
    try:
        return max(1, int(os.environ.get("HUBATLAS_SEED_LIMIT", SEED_LIMIT_DEFAULT)))
    except ValueError:
        return SEED_LIMIT_DEFAULT


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S, endpoint: str | None = None) -> str | None:
    """None when the Hub answers a one-model listing within `timeout` s, else why not."""
    from ingest.errors import SourceError
    from ingest.hub import HubSource

    probe = HubSource(endpoint=endpoint, max_retries=0, timeout=timeout)
    try:
        next(iter(probe.iter_models(limit=1)), None)
    except (SourceError, OSError) as e:
        return f"the Hub did not answer ({type(e).__name__})"
    return None


class SampleSource(SnapshotSource):
    """The shipped sample, named so that pages can say they show sample data."""

    def __init__(self, folder: Path = SAMPLE_DIR):
        super().__init__(folder)
        self.name = SAMPLE_SOURCE_PREFIX + folder.name


def seed_first_run(*, refresh: Refresher | None = None, snapshot: str | None = None,
                   hub_timeout: float = HUB_PROBE_TIMEOUT_S) -> SeedReport | None:
    """Load a first graph when none exists (embedded engine only); None when one exists."""
    if neo4j_configured() or current_generation() is not None:
        return None
    snapshot = snapshot if snapshot is not None else os.environ.get("HUBATLAS_SNAPSHOT")
    limit = seed_limit()
    if snapshot:
        report = ingest(SnapshotSource(Path(snapshot)), limit=limit, refresh=refresh)
        return SeedReport("snapshot", report, f"HUBATLAS_SNAPSHOT={snapshot}")
    why_not = hub_reachable(hub_timeout)
    if why_not is None:
        try:
            return SeedReport("hub", ingest(LiveHubSource(), limit=limit, refresh=refresh),
                              f"up to {limit:,} records per kind from the Hub")
        except Exception as e:  # noqa: BLE001 - a flaky Hub: fall back to the sample
            why_not = f"loading from the Hub failed ({type(e).__name__}: {e})"
            log.warning("first-run seed: %s; loading the shipped sample", why_not)
    if not SAMPLE_DIR.is_dir():
        raise FileNotFoundError(f"{why_not}, and the shipped sample {SAMPLE_DIR} is missing")
    return SeedReport("sample", ingest(SampleSource(), refresh=refresh), why_not)
