"""Account types from the Hub: which namespaces are organisations and which are users.

Listing records carry no account type, so every `Account` is loaded as `unknown`. After the
load, `AccountLookup` asks the Hub's account pages (`HubSource.account_type`) for a bounded
batch of the accounts it has never answered for, the most downloaded first, and writes what
it said into the graph (`accountType`, `accountCheckedAt`), committed every `commit_every`
answers. Later runs continue with the rest; an account is asked once (an answered one keeps
its type, a namespace with no page stays `unknown`). A Hub that does not answer ends the
lookups of that run (what was learnt stays), never the run: those accounts stay `unknown`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from graph import queries as q
from graph.dates import iso_utc
from graph.schema import ACCOUNT_UNKNOWN
from graph.store import GraphStore
from ingest.errors import SourceError
from ingest.hub import redact_url

#: accounts asked per run by default (at most two requests each): about 17 days of hourly
#: runs for the 200k namespaces of the full graph, the most downloaded in the first runs
DEFAULT_ACCOUNT_LIMIT = 500


@dataclass
class AccountLookupReport:
    """One run's lookups: accounts asked, their answers, what is left, how it ended."""

    asked: int = 0
    organization: int = 0
    user: int = 0
    not_found: int = 0  # the Hub has no page for the namespace: stays unknown
    remaining: int = 0  # accounts the Hub has still not answered for
    seconds: float = 0.0
    error: str | None = None  # why the lookups stopped early (the Hub did not answer)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class AccountLookup:
    """Ask `hub` (a `HubSource`) the type of at most `limit` accounts per run."""

    def __init__(self, hub: Any, *, limit: int = DEFAULT_ACCOUNT_LIMIT, commit_every: int = 100,
                 interval: float = 0.0, sleep: Callable[[float], Any] = time.sleep):
        if limit < 0 or commit_every < 1 or interval < 0:
            raise ValueError("limit and interval must be >= 0, commit_every >= 1")
        self.hub = hub
        self.limit = limit
        self.commit_every = commit_every
        self.interval = interval
        self._sleep = sleep

    def run(self, store: GraphStore) -> AccountLookupReport:
        """Ask, write the answers into `store` (writable), and report."""
        clock = time.perf_counter()
        report = AccountLookupReport()
        pending: list[dict] = []
        statement = q.set_account_types(store)
        for name in q.accounts_to_ask(store, self.limit) if self.limit else []:
            if report.asked and self.interval:
                self._sleep(self.interval)
            try:
                kind = self.hub.account_type(name)
            except (SourceError, OSError) as e:
                report.error = redact_url(" ".join(str(e).split()))
                break
            report.asked += 1
            if kind is None:
                report.not_found += 1
            else:
                setattr(report, kind, getattr(report, kind) + 1)
            pending.append({"id": name, "accountType": kind or ACCOUNT_UNKNOWN,
                            "accountCheckedAt": iso_utc(datetime.now(timezone.utc))})
            if len(pending) >= self.commit_every:
                store.write([(statement, {"rows": pending})])
                pending = []
        if pending:
            store.write([(statement, {"rows": pending})])
        report.remaining = q.accounts_unasked(store)
        report.seconds = round(time.perf_counter() - clock, 3)
        return report
