"""Trends across ingest runs: a model's downloads and likes as each run saw them, and what
is trending (the largest change between each model's last two observations).
Deep link: `?model=org/name`."""
from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from analytics import trends
from analytics.pipeline import TRENDS
from app_pages.charts import plotly_chart
from app_pages.common import (
    cached,
    csv_download,
    id_links,
    link_columns,
    model_picker,
    require_store,
    require_stored,
)

st.title("Trends across ingest runs")
st.caption("Every ingest run records each model's downloads and likes as it saw them. The "
           "Hub's downloads count the last 30 days (they can fall); likes are a running total.")
require_store()
stored_trends = require_stored(TRENDS, "The trends")  # the job's result
trending, runs = stored_trends.trending, stored_trends.runs

st.subheader("Trending")
if trending.empty:
    st.info(f"Trends need two ingest runs that saw the same models; this graph has "
            f"{len(runs):,} run(s) with observations. Each later run (the hourly cron, or "
            "another snapshot ingested as its own run) adds a point.")
else:
    span = trends.run_summary(trending)
    st.caption(f"{span['models']:,} models seen by two or more runs, between "
               f"{span['from']:%Y-%m-%d %H:%M} and {span['to']:%Y-%m-%d %H:%M}; downloads rose "
               f"for {span['rising_downloads']:,} and fell for {span['falling_downloads']:,}.")
    c = st.columns(4)
    metric = c[0].segmented_control("Metric", list(trends.METRICS), default="downloads",
                                    key="trend_metric") or "downloads"
    kind = c[1].segmented_control("Change", list(trends.KINDS), default="absolute",
                                  key="trend_kind") or "absolute"
    direction = c[2].segmented_control("Direction", ["rising", "falling"], default="rising",
                                       key="trend_direction") or "rising"
    min_base = c[3].number_input("Minimum earlier value", min_value=0, value=100, step=50,
                                 key="trend_min_base",
                                 help="Only models at least this big at the earlier run are "
                                      "ranked (1 → 50 downloads is not news).")
    top = trends.top_trending(trending, metric=metric, kind=kind, min_base=min_base,
                              rising=direction == "rising", limit=50)
    cols = ["id", "observations", f"{metric}_before", f"{metric}_after", f"{metric}_change",
            f"{metric}_relative", "days", "at_before", "at_after"]
    table, links = link_columns(top[cols], id=("trends", "model"))
    st.dataframe(table, hide_index=True, key="trending_table", column_config={
        **links, f"{metric}_relative": st.column_config.NumberColumn(format="percent")})
    csv_download(trending, "Download all changes (CSV)", "trending.csv", key="trending_csv")

st.subheader("One model over runs")
model_id = model_picker("Model id", key="trend_model", query_param="model")
if model_id is None:
    st.info("Pick a model to see its downloads and likes run by run.")
    st.stop()
id_links(model_id)
series = cached(trends.model_trend, model_id)
if series.empty:
    st.info("No ingest run has observed this model (a stub known only as a base model).")
    st.stop()
fig = make_subplots(specs=[[{"secondary_y": True}]])
fig.add_trace(go.Scatter(x=series["when"], y=series["downloads"], mode="lines+markers",
                         name="downloads (30 days)"), secondary_y=False)
fig.add_trace(go.Scatter(x=series["when"], y=series["likes"], mode="lines+markers",
                         name="likes"), secondary_y=True)
fig.update_yaxes(title_text="downloads", secondary_y=False)
fig.update_yaxes(title_text="likes", secondary_y=True)
fig.update_layout(height=380, margin=dict(t=10, b=10), legend=dict(orientation="h", y=-0.2))
plotly_chart(fig, key="model_trend_chart")
if len(series) == 1:
    st.caption("Seen by one run so far: one point.")
st.dataframe(series, hide_index=True, key="model_runs")
