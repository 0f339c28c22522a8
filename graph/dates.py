"""Datetimes, one convention for every layer.

- The graph stores naive UTC (Kùzu/LadybugDB `TIMESTAMP`; Neo4j `DateTime`s are written and
  read back in UTC): `naive_utc` before writing, `iso_utc` for a query parameter.
- Code between the layers holds aware UTC `datetime`s: `as_utc`, `parse_iso`.
- Frames hold tz-aware UTC pandas timestamps: `utc_times`.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pandas as pd


def as_utc(value: datetime | None) -> datetime | None:
    """An aware UTC datetime; a naive one is read as UTC (as the graph stores it)."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(
        timezone.utc)


def naive_utc(value: datetime | None) -> datetime | None:
    """The naive UTC datetime the graph stores."""
    return None if value is None else as_utc(value).replace(tzinfo=None)


def iso_utc(value: datetime | None) -> str | None:
    """A timestamp parameter: ISO 8601 with a `T`, naive UTC (Kùzu CASTs it, Neo4j
    `datetime()`s it)."""
    return None if value is None else naive_utc(value).isoformat()


def parse_iso(text: Any) -> datetime | None:
    """A Hub timestamp (`2024-07-11T10:00:00.000Z`) as aware UTC; None when it is not one.
    Lenient: records are checked (with reasons) by `ingest.records.parse_datetime`."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return as_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError:
        return None


def utc_times(values: Any, **kw: Any) -> Any:
    """`pd.to_datetime` as every frame here needs it: tz-aware UTC, unparseable → NaT (a
    scalar gives a Timestamp or NaT, a column a Series)."""
    return pd.to_datetime(values, utc=True, errors="coerce", **kw)
