"""graph/dates.py: one datetime convention (naive UTC in the graph, aware UTC in code)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd

from graph.dates import as_utc, iso_utc, naive_utc, parse_iso, utc_times

PARIS = timezone(timedelta(hours=2))


def test_aware_naive_and_iso_agree():
    noon_paris = datetime(2024, 7, 11, 12, 0, tzinfo=PARIS)
    assert as_utc(noon_paris) == datetime(2024, 7, 11, 10, 0, tzinfo=timezone.utc)
    assert naive_utc(noon_paris) == datetime(2024, 7, 11, 10, 0)
    assert as_utc(datetime(2024, 7, 11, 10, 0)).tzinfo is timezone.utc  # naive is UTC
    assert iso_utc(noon_paris) == "2024-07-11T10:00:00"
    assert as_utc(None) is None and naive_utc(None) is None and iso_utc(None) is None


def test_parse_iso_reads_hub_timestamps_and_nothing_else():
    assert parse_iso("2024-07-11T10:00:00.000Z") == datetime(2024, 7, 11, 10, tzinfo=timezone.utc)
    assert parse_iso("2024-07-11T12:00:00+02:00") == datetime(2024, 7, 11, 10, tzinfo=timezone.utc)
    for bad in ("", "  ", "yesterday", None, 17, "2024-13-45"):
        assert parse_iso(bad) is None


def test_utc_times_on_columns_and_scalars():
    col = utc_times(pd.Series(["2024-07-11T10:00:00Z", None, "not a date"]))
    assert str(col.dt.tz) == "UTC" and col.iloc[0].hour == 10 and col.iloc[1:].isna().all()
    assert utc_times(datetime(2024, 7, 11, 10)) == pd.Timestamp("2024-07-11 10:00", tz="UTC")
    assert pd.isna(utc_times(None))
