"""Overview: what is in the graph, how it grew, who gets derived from, and the last ingests."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from analytics.pipeline import OVERVIEW
from app_pages import style
from app_pages.charts import plotly_chart
from app_pages.common import csv_download, require_store, require_stored
from graph.schema import ACCOUNT_TYPES

st.title("Hub Atlas — overview")
require_store()

overview = require_stored(OVERVIEW, "The overview")
nodes, rels = overview.nodes, overview.rels
top_labels = ("Model", "Dataset", "Space", "Paper", "Account")
cols = st.columns(len(top_labels))
for col, label in zip(cols, top_labels):
    col.metric(label + "s", f"{nodes.get(label, 0):,}", help=None if label != "Account" else (
        "Namespaces that publish repos: "
        + ", ".join(f"{nodes.get(f'Account ({t})', 0):,} {t}" for t in ACCOUNT_TYPES)))

# small tables as static tables: a data grid per table adds to a fresh page's render time
with st.expander("Counts by node label and relation type", expanded=False):
    left, right = st.columns(2)
    left.table(pd.DataFrame(nodes.items(), columns=["label", "nodes"]), hide_index=True)
    right.table(pd.DataFrame(rels.items(), columns=["relation type", "relations"]),
                hide_index=True)

st.subheader("Uploads per month")
by = st.segmented_control("Split by", ["task", "library"], default="task", key="uploads_by")
uploads = overview.uploads[by or "task"]
if uploads.empty:
    st.info("No model has a known creation date yet.")
else:
    fig = px.bar(uploads, x="month", y="n", color="group",
                 labels={"n": "models created", "month": "", "group": by or "task"})
    fig.update_layout(height=380, margin=dict(t=40, b=10), legend_title_text=by)
    partial = uploads.loc[uploads["partial"], "month"].unique() if "partial" in uploads else []
    for month in partial:  # the month the observations end in is not a whole month
        fig.add_vrect(x0=month - pd.Timedelta(days=15), x1=month + pd.Timedelta(days=15),
                      fillcolor="grey", opacity=0.15, line_width=0,
                      annotation_text="partial month", annotation_position="top left")
    plotly_chart(fig, key="uploads_chart")
    st.caption("By the month of each model's createdAt, up to where the graph's observations "
               "end (a shaded month is partial); models the Hub back-filled with 2022-03-02 "
               "have no known date and are left out.")

left, right = st.columns([3, 2])
with left:
    st.subheader("Base models with the most derivatives")
    top = overview.top_base
    if top.empty:
        st.info("No lineage links in the graph yet.")
    else:
        fig = px.bar(top, y="id", x="n", color="relation", orientation="h",
                     color_discrete_map=style.RELATION_COLOURS,
                     labels={"n": "direct derivatives", "id": ""})
        fig.update_layout(height=560, margin=dict(t=40, b=10),
                          yaxis=dict(categoryorder="total ascending"))
        plotly_chart(fig, key="top_base_chart")
with right:
    st.subheader("Licence mix")
    mix = overview.licences
    if mix.empty:
        st.info("No models yet.")
    else:
        fig = px.pie(mix, names="licence", values="n", hole=0.45,
                     hover_data=["parts"] if "parts" in mix else None)
        fig.update_traces(textposition="inside", textinfo="percent")
        fig.update_layout(height=560, margin=dict(t=40, b=10))
        plotly_chart(fig, key="licence_chart")

st.subheader("Publishers by account type")
accounts = getattr(overview, "accounts", None)
if accounts is None or accounts.empty:
    st.info("No account in the graph yet (or this overview was stored before account types "
            "were recorded).")
else:
    # a table, not a fourth chart: each plotly chart adds to a fresh page's render time
    st.table(accounts.assign(model_share=accounts["model_share"].map("{:.1%}".format))
             .rename(columns={"model_share": "share of models"}), hide_index=True)
    st.caption("An account's type is what the Hub's account pages say: the scheduled job asks "
               "a bounded batch per run, most downloaded first, each account once. Until it "
               "has been asked (recorded snapshots, the Hub unreachable) it is unknown, never "
               "guessed from the name; 'not on the Hub': the Hub has no page for it (deleted "
               "or renamed).")

st.subheader("Last ingest runs")
runs = overview.runs
if runs.empty:
    st.info("No ingest run recorded.")
else:
    st.table(runs, hide_index=True)  # at most 20 rows: a static table (see above)
    csv_download(runs, "Download runs (CSV)", "ingest_runs.csv", key="runs_csv")
