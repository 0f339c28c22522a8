"""Downloads and likes across ingest runs: a model's series, and what is trending.

Every ingest run links each model it saw to its `IngestRun` with the downloads and likes of
that moment (`OBSERVED_IN`). The Hub's `downloads` is a rolling count of the last 30 days, not
a running total, so it can fall; `likes` is a running total.

- `model_trend` (page time, cheap): one model's observations, one row per run.
- `build_trending` (batch builder): for every model seen by at least two runs, the change
  between its last two observations, absolute and relative; `build_trends` adds the runs and
  is what the scheduled job stores (`Trends.save` / `load`); `top_trending` ranks the table
  with a minimum base (page time, a pandas filter).

An observation's time is `OBSERVED_IN.at` (the run's start), else the run's `startedAt`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from graph.store import GraphStore, store_or_open

METRICS = ("downloads", "likes")
KINDS = ("absolute", "relative")
TREND_COLUMNS = ["id", "observations", "run_before", "run_after", "at_before", "at_after",
                 "days", *[f"{m}_{s}" for m in METRICS
                           for s in ("before", "after", "change", "relative")]]


def _ordered(obs: pd.DataFrame) -> pd.DataFrame:
    obs = obs.copy()
    obs["when"] = pd.to_datetime(obs["at"]).fillna(pd.to_datetime(obs["startedAt"]))
    return obs.sort_values(["id", "when", "run"], kind="stable")


def observation_series(obs: pd.DataFrame) -> pd.DataFrame:
    """Observations of one or more models in time order with the change since the previous
    run: id, run, source, when, downloads, likes, downloads_change, likes_change."""
    cols = ["id", "run", "source", "when", *METRICS, *[f"{m}_change" for m in METRICS]]
    if obs.empty:
        return pd.DataFrame(columns=cols)
    df = _ordered(obs)
    for m in METRICS:
        df[m] = pd.to_numeric(df[m], errors="coerce")
        df[f"{m}_change"] = df.groupby("id")[m].diff()
    return df[cols].reset_index(drop=True)


def model_trend(store: GraphStore, model_id: str) -> pd.DataFrame:
    """One model's downloads and likes as each ingest run saw them (`observation_series`)."""
    from graph import views_queries as vq

    return observation_series(vq.model_observations(store, [model_id]))


def trend_table(obs: pd.DataFrame) -> pd.DataFrame:
    """Per model with two or more observations: the last two (before, after), their times,
    the days between, and per metric before, after, change and relative change
    (change / before; NaN where before is 0 or unknown). Pure."""
    if obs.empty:
        return pd.DataFrame(columns=TREND_COLUMNS)
    df = _ordered(obs)
    counts = df.groupby("id").size()
    df = df[df["id"].map(counts) >= 2]
    last2 = df.groupby("id", sort=False).tail(2)
    before = last2.groupby("id", sort=False).head(1).set_index("id")
    after = last2.groupby("id", sort=False).tail(1).set_index("id")
    after = after.loc[before.index]
    out = pd.DataFrame({"id": before.index,
                        "observations": counts.reindex(before.index).to_numpy(),
                        "run_before": before["run"].to_numpy(),
                        "run_after": after["run"].to_numpy(),
                        "at_before": before["when"].to_numpy(),
                        "at_after": after["when"].to_numpy()})
    out["days"] = (out["at_after"] - out["at_before"]).dt.total_seconds() / 86400.0
    for m in METRICS:
        b = pd.to_numeric(before[m], errors="coerce").to_numpy(dtype=float)
        a = pd.to_numeric(after[m], errors="coerce").to_numpy(dtype=float)
        out[f"{m}_before"], out[f"{m}_after"] = b, a
        out[f"{m}_change"] = a - b
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"{m}_relative"] = np.where(b > 0, (a - b) / b, np.nan)
    return out[TREND_COLUMNS].reset_index(drop=True)


def build_trending(store: GraphStore | None = None) -> pd.DataFrame:
    """Batch builder: `trend_table` over every model seen by two or more runs."""
    from graph import views_queries as vq

    with store_or_open(store) as s:
        return trend_table(vq.repeated_observations(s))


@dataclass
class Trends:
    """The stored trends of one graph generation: `trending` (`trend_table` rows) and `runs`
    (the ingest runs with how many models each observed: run, source, startedAt, at, models)."""

    trending: pd.DataFrame
    runs: pd.DataFrame

    def save(self, folder: Path | str) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.trending.to_parquet(folder / "trending.parquet", index=False)
        self.runs.to_parquet(folder / "runs.parquet", index=False)
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> "Trends":
        folder = Path(folder)
        return cls(trending=pd.read_parquet(folder / "trending.parquet"),
                   runs=pd.read_parquet(folder / "runs.parquet"))


def build_trends(store: GraphStore | None = None) -> Trends:
    """Batch builder for the scheduled job: the trending table and the observing runs."""
    from graph import views_queries as vq

    with store_or_open(store) as s:
        return Trends(trending=trend_table(vq.repeated_observations(s)),
                      runs=vq.observation_runs(s))


def top_trending(trending: pd.DataFrame, *, metric: str = "downloads", kind: str = "absolute",
                 min_base: float = 100, limit: int = 50, rising: bool = True) -> pd.DataFrame:
    """The largest changes of `metric` between each model's last two runs.

    kind="absolute" ranks by the change, "relative" by change / before; only models whose
    earlier value is at least `min_base` are ranked (a model going from 1 to 50 downloads is
    not news). rising=False ranks the largest falls."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    col = f"{metric}_change" if kind == "absolute" else f"{metric}_relative"
    df = trending[trending[f"{metric}_before"] >= float(min_base)].dropna(subset=[col])
    df = df[df[col] > 0] if rising else df[df[col] < 0]
    return df.sort_values([col, "id"], ascending=[not rising, True]).head(int(limit)) \
        .reset_index(drop=True)


def run_summary(trending: pd.DataFrame) -> dict:
    """How many models the trend table covers and over which span of time."""
    if trending.empty:
        return {"models": 0}
    return {"models": int(len(trending)),
            "from": pd.Timestamp(trending["at_before"].min()),
            "to": pd.Timestamp(trending["at_after"].max()),
            "median_days": float(np.nanmedian(trending["days"])),
            "rising_downloads": int((trending["downloads_change"] > 0).sum()),
            "falling_downloads": int((trending["downloads_change"] < 0).sum())}
