"""Publishers: an author's or organisation's models, what others derived from them (by
relation and over time), who derives most, how their families grew, and the licence
problems in those families. Deep link: `?author=name`."""
from __future__ import annotations

import plotly.express as px
import streamlit as st

from analytics import publishers
from analytics.pipeline import LICENCE_AUDIT, PUBLISHERS
from app_pages.charts import plotly_chart
from app_pages.common import (
    author_links,
    cached,
    csv_download,
    link_columns,
    require_store,
    require_stored,
    stored,
)
from app_pages.style import RELATION_COLOURS
from graph.schema import ACCOUNT_ORGANIZATION, ACCOUNT_UNKNOWN, ACCOUNT_USER

st.title("Publishers")
require_store()
index = require_stored(PUBLISHERS, "The publisher index")  # one row per author

if "author_text" not in st.session_state:
    st.session_state["author_text"] = st.query_params.get("author", "")
text = st.text_input("Author or organisation", key="author_text",
                     placeholder="e.g. meta-llama, TheBloke, google").strip()
matches = publishers.search_authors(index, text, limit=50) if text else []
author = text if text in set(index["author"]) else None
others = [a for a in matches if a != author]
if others:
    pick = st.selectbox(f"{len(others)} matching authors (most derived-from first)", others,
                        index=None, key="author_choice", placeholder="pick one…")
    if pick:
        author = pick

if author is None:
    if text:
        st.warning("No author of that name in the graph." if not matches else
                   "Not an author name; pick one of the matches.")
    elif "author" in st.query_params:
        del st.query_params["author"]
    st.subheader("Most derived-from publishers")
    st.caption("Direct derivatives of their models published by someone else. Account types "
               "are what the Hub's account pages say; the scheduled job asks a bounded batch "
               "per run (most downloaded first), the rest are unknown, never guessed.")
    shown = index
    if "account_type" in index:
        kinds = {"organisations": ACCOUNT_ORGANIZATION, "users": ACCOUNT_USER,
                 "unknown": ACCOUNT_UNKNOWN}
        counts = index["account_type"].value_counts()
        kind = st.segmented_control(
            "Account type", list(kinds), key="account_kind",
            format_func=lambda k: f"{k} ({int(counts.get(kinds[k], 0)):,})")
        if kind:
            shown = index[index["account_type"] == kinds[kind]]
    table, links = link_columns(shown.head(100), author=("publishers", "author"))
    st.dataframe(table, hide_index=True, key="publisher_index", column_config=links)
    csv_download(index, "Download all publishers (CSV)", "publishers.csv", key="index_csv")
    st.stop()

if st.query_params.get("author") != author:
    st.query_params["author"] = author
profile = cached(publishers.publisher_profile, author)
author_links(author)
row = index[index["author"] == author].iloc[0]
if "account_type" in row:
    known = row["account_type"] != ACCOUNT_UNKNOWN
    st.caption(f"**{publishers.account_label(row['account_type'], bool(row['account_checked']))}"
               f"**{' (as its account page on the Hub says)' if known else ''}")
c = st.columns(5)
c[0].metric("Models", f"{len(profile.models):,}")
c[1].metric("Derived by others", f"{len(profile.derivatives):,}")
c[2].metric("Deriving authors", f"{int(row['deriving_authors']):,}")
c[3].metric("Family size", f"{profile.family_size:,}",
            help="Every model descending from theirs, at any depth, by anyone.")
c[4].metric("Conflicts in their families", f"{int(row['family_conflicts']):,}")

# lazy tabs: only the open one runs (the plotly bundle loads only for a tab with a chart)
tab_models, tab_derived, tab_who, tab_growth, tab_lic = st.tabs(
    ["Models", "Derived by others", "Who derives most", "Family growth", "Licence conflicts"],
    on_change="rerun", key="publisher_tab")

with tab_models:
    if tab_models.open:
        table, links = link_columns(profile.models, id=("lineage", "model"))
        st.dataframe(table, hide_index=True, key="author_models", column_config={
            **links, "children": st.column_config.NumberColumn("direct derivatives"),
            "createdAt": st.column_config.DatetimeColumn(format="YYYY-MM-DD")})
        csv_download(profile.models, "Download models (CSV)", f"{author}_models.csv",
                     key="models_csv")

with tab_derived:
    if tab_derived.open:
        if profile.derivatives.empty:
            st.info("Nobody else has derived from these models (in this graph).")
        else:
            left, right = st.columns([1, 2])
            fig = px.bar(profile.by_relation, x="relation", y="n", color="relation",
                         color_discrete_map=RELATION_COLOURS, labels={"n": "direct derivatives"})
            fig.update_layout(height=360, margin=dict(t=10, b=10), showlegend=False)
            plotly_chart(fig, key="by_relation_chart", container=left)
            if len(profile.by_month):
                fig = px.bar(profile.by_month, x="month", y="n", color="relation",
                             color_discrete_map=RELATION_COLOURS,
                             labels={"n": "new derivatives by others", "month": ""})
                fig.update_layout(height=360, margin=dict(t=10, b=10))
                plotly_chart(fig, key="by_month_chart", container=right)
            table, links = link_columns(profile.derivatives, id=("lineage", "model"),
                                        author=("publishers", "author"))
            st.dataframe(table, hide_index=True, key="derivatives_table", column_config=links)
            csv_download(profile.derivatives, "Download derivatives (CSV)",
                         f"{author}_derivatives.csv", key="derivatives_csv")

with tab_who:
    if tab_who.open:
        if profile.top_derivers.empty:
            st.info("Nobody else has derived from these models (in this graph).")
        else:
            table, links = link_columns(profile.top_derivers, author=("publishers", "author"))
            st.dataframe(table, hide_index=True, key="top_derivers", column_config=links)

with tab_growth:
    if tab_growth.open:
        if profile.family_growth.empty:
            st.info("No dated descendants.")
        else:
            fig = px.area(profile.family_growth, x="month", y="total",
                          labels={"total": "descendants (cumulative)", "month": ""})
            fig.update_layout(height=380, margin=dict(t=10, b=10))
            plotly_chart(fig, key="family_growth_chart")
            if profile.undated:
                st.caption(f"{profile.undated:,} descendants have no known creation date.")

with tab_lic:
    if tab_lic.open:
        found = stored(LICENCE_AUDIT)
        if found is None:
            st.info("The licence audit is not computed yet for this graph (the scheduled job "
                    "builds it after each ingest).")
            st.stop()
        audit = found.value
        in_families = audit.in_families_of(author)
        own = audit.offenders(author=author)
        st.markdown(f"**In families rooted at {len(profile.models):,} of their models**: "
                    f"{len(in_families):,} derivatives whose licence is not the same or compatible.")
        if len(in_families):
            table, links = link_columns(in_families[["id", "author", "licence", "verdict",
                                                     "chain_verdict", "root", "downloads",
                                                     "chain"]],
                                        id=("lineage", "model"), author=("publishers", "author"))
            st.dataframe(table, hide_index=True, key="family_conflicts", column_config=links)
            csv_download(in_families, "Download (CSV)", f"{author}_family_licences.csv",
                         key="family_lic_csv")
        st.markdown(f"**Their own derivatives in conflict with their base**: {len(own):,}")
        if len(own):
            st.dataframe(own[["id", "licence", "parent", "root_licence", "inheritors", "chain"]],
                         hide_index=True, key="own_conflicts")
