"""Model cards from the live Hub for models that declare no base model.

`CardFetchingSource` wraps a live-Hub source: a model item with no `base_model` tag, no card
`base_model` and no `baseModels` gets its README fetched through `HubSource.model_card` (the
same retries and backoff as every request), so `ingest.cards` can read a base model from the
prose. Politely: at most `limit` READMEs per run, `interval` seconds apart. Incrementally: the
wrapped listing only yields models modified since the last run, so a card is fetched again only
when its model changed.
"""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Callable, Iterator

from ingest.sources import RawItem, Source

#: READMEs fetched per run by default, and the pause between two of them (seconds)
DEFAULT_CARD_LIMIT = 200
DEFAULT_CARD_INTERVAL = 0.5


def declares_base(data: dict) -> bool:
    """Whether an API model object names a base model anywhere the Hub records one."""
    tags = data.get("tags") if isinstance(data.get("tags"), list) else []
    if any(isinstance(t, str) and t.startswith("base_model:") for t in tags):
        return True
    if data.get("baseModels"):
        return True
    card = data.get("cardData")
    return isinstance(card, dict) and bool(card.get("base_model"))


class CardFetchingSource:
    """`source`'s items, with a `card` (README text) added to models that declare no base."""

    def __init__(self, source: Source, hub: Any, *, limit: int = DEFAULT_CARD_LIMIT,
                 interval: float = DEFAULT_CARD_INTERVAL,
                 sleep: Callable[[float], Any] = time.sleep):
        if limit < 0 or interval < 0:
            raise ValueError("limit and interval must be >= 0")
        self.source = source
        self.hub = hub
        self.limit = limit
        self.interval = interval
        self._sleep = sleep
        self.name = source.name  # the same source for run resumption
        self.fetched = 0
        self.found = 0

    def iter_items(self, *, limit: int | None = None,
                   since: datetime | None = None) -> Iterator[RawItem]:
        for item in self.source.iter_items(limit=limit, since=since):
            data = item.data
            if (item.kind == "model" and isinstance(data, dict) and self.fetched < self.limit
                    and isinstance(data.get("id"), str) and "card" not in data
                    and not declares_base(data)):
                if self.fetched and self.interval:
                    self._sleep(self.interval)
                self.fetched += 1
                text = self.hub.model_card(data["id"])
                if text:
                    self.found += 1
                    item = RawItem(item.kind, {**data, "card": text}, item.error)
            yield item
