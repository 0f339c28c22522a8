"""Lineage explorer: one model's ancestors, descendants, lineage graph, timeline and licence
drift. Deep link: `?model=org/name`."""
from __future__ import annotations

import plotly.express as px
import streamlit as st
from neo4j_viz import Node, Relationship, VisualizationGraph

from analytics import export, family, forecasts
from analytics.pipeline import FORECASTS
from app_pages import style
from app_pages.charts import plotly_chart
from app_pages.common import (
    cached,
    csv_download,
    get_store,
    hub_url,
    md_text,
    model_picker,
    observed_until,
    page_url,
    require_store,
    stored,
)
from graph import queries
from graph.schema import LINEAGE_RELS

GRAPH_NODE_CAP = 150
RELATION_LABELS = {"finetune": "Finetunes", "adapter": "Adapters", "quantized": "Quantizations",
                   "merge": "Merges", "unknown": "Other derivatives"}
TABLE_COLUMNS = ["id", "depth", "relation", "parent", "source", "inferred", "downloads", "likes",
                 "createdAt", "license", "pipelineTag", "libraryName", "author"]
#: where a lineage edge came from (the edge's `source` property)
SOURCE_LABELS = {"api": "Hub API", "typed_tag": "typed tag", "tag": "tag",
                 "card": "card metadata", "card_text": "card text"}
SOURCE_HELP = ("Where the link came from: Hub API, typed tag, tag, card metadata, or card text "
               "(read from the card's prose: nothing was declared). inferred: the Hub recorded "
               "no relation type, so it was predicted.")
TABS = ("Graph", "Ancestors", "Descendants", "Timeline", "Licence drift")
SORTS = {"downloads": ("downloads", False), "likes": ("likes", False),
         "created (newest)": ("createdAt", False), "created (oldest)": ("createdAt", True),
         "depth": ("depth", True), "id": ("id", True)}


def _recentre(model: str) -> None:
    st.session_state["lineage_model_text"] = model  # the picker's text (app_pages.common)


st.title("Lineage explorer")
require_store()

model_id = model_picker("Model id", key="lineage_model", query_param="model")
if model_id is None:
    st.info("Type part of a model id above, e.g. `llama`, `stable-diffusion` or `bert`, and "
            "pick a match. Pages can be shared: the URL carries `?model=…`.")
    st.stop()

model = cached(queries.get_model, model_id)
if model is None:  # the index came from an older generation
    st.warning(f"Model **{md_text(model_id)}** is not in the graph (any more).")
    st.stop()

st.subheader(md_text(model_id))
children = cached(queries.descendant_counts, model_id)
ancestors = cached(queries.ancestors, model_id)
if model.stub:
    as_of = observed_until()
    st.warning(f"**{md_text(model_id)}** is named as a base by {sum(children.values()):,} "
               f"model(s) but was not found on the Hub{f' as of {as_of}' if as_of else ''} "
               "(deleted, renamed, private, or a local path): it has no metadata of its own.")
m1, m2, m3, m4 = st.columns(4)
m1.metric("Downloads", f"{model.downloads or 0:,}")
m2.metric("Likes", f"{model.likes or 0:,}")
m3.metric("Created", model.created_at.strftime("%Y-%m-%d") if model.created_at else "unknown")
m4.metric("Licence", md_text(model.license or "—"))  # a metric value is Markdown too
hub_link = "" if model.stub else f" · [open on the Hub]({hub_url(model_id)})"
st.caption(f"Task: {md_text(model.pipeline_tag or '—')} · "
           f"library: {md_text(model.library_name or '—')} · "
           f"author: {md_text(model.author or '—')}{hub_link}")
st.markdown("**Model tree** (direct derivatives): " + " · ".join(
    f"{RELATION_LABELS[r]} **{children[r]:,}**" for r in LINEAGE_RELS if children[r]
) if any(children.values()) else "**Model tree**: no derivatives.")
forecast = stored(FORECASTS)
counts = (forecasts.derivative_counts(forecast.value, model_id)
          if forecast is not None and forecast.current else None)
if counts is not None and counts.total == sum(children.values()):
    # the Forecasts page counts only dated derivatives: say how its figure relates to this one
    link = f"[Forecasts]({page_url('forecasts', model=model_id)})"
    st.caption(f"{link}: {counts.sentence()}" if counts.total != counts.modelled else
               f"The {link} page models all {counts.total:,} of them.")

if ancestors.empty and not any(children.values()):
    st.info(f"**{md_text(model_id)}** has no lineage in the graph: no base model and no "
            "derivatives.")
    st.stop()

depth = st.slider("Descendant depth", 1, 6, 2, key="depth",
                  help="How many generations of derivatives to follow.")
desc = cached(queries.descendants, model_id, depth)
n_desc = len(desc)
if n_desc:
    per_rel = family.relation_counts(desc)
    st.caption(f"{n_desc:,} descendants within {depth} generation(s): " + ", ".join(
        f"{n:,} {r}" for r, n in per_rel.items() if n))

# lazy tabs: only the open one runs (and the plotly bundle loads only for the timeline); the
# labels stay the same from model to model, so the open tab stays open when re-centring
tab_graph, tab_anc, tab_desc, tab_time, tab_drift = st.tabs(
    list(TABS), on_change="rerun", key="lineage_tab")
if not ancestors.empty:
    st.caption(f"{len(ancestors):,} ancestor(s) up to the root(s).")

with tab_graph:
    if tab_graph.open:
        sub = family.lineage_graph(model, ancestors, desc, cap=GRAPH_NODE_CAP)
        nodes = []
        for r in sub.node_records():
            colour = (style.FOCUS_COLOUR if r["kind"] == "focus" else
                      style.ANCESTOR_COLOUR if r["kind"] == "ancestor" else
                      style.SUMMARY_COLOUR if r["kind"] == "summary" else
                      style.RELATION_COLOURS.get(r["relation"], "#7f7f7f"))
            nodes.append(Node(id=r["id"], caption=r["caption"], color=colour,
                              size=family.node_size(r["downloads"], r["kind"]),
                              properties={"kind": r["kind"], "relation": r["relation"],
                                          "depth": r["depth"], "downloads": r["downloads"]}))
        rels = [Relationship(source=r["source"], target=r["target"],
                             caption=r["relation"] + (
                                 f" · {SOURCE_LABELS[r['origin']]}" if r["origin"] == "card_text"
                                 else " · inferred" if r["inferred"] else ""),
                             color=style.RELATION_COLOURS.get(r["relation"], "#7f7f7f"),
                             properties={"source": SOURCE_LABELS.get(r["origin"], r["origin"]),
                                         "inferred": r["inferred"]})
                for r in sub.edge_records()]
        vg = VisualizationGraph(nodes=nodes, relationships=rels)
        legend = {"this model": style.FOCUS_COLOUR, "ancestor": style.ANCESTOR_COLOUR,
                  **{f"{k}": v for k, v in style.RELATION_COLOURS.items()},
                  "not drawn (summary)": style.SUMMARY_COLOUR}
        # our own legend above the drawing (the widget's floats over the nodes)
        vg.set_legend(nodes=legend, relationships=style.RELATION_COLOURS, visible=False)
        st.markdown(" ".join(f'<span style="color:{c}">●</span> {md_text(k)}&nbsp;&nbsp;'
                             for k, c in legend.items()), unsafe_allow_html=True)
        if sub.hidden:
            st.caption(f"Showing {sub.shown:,} of {sub.total:,} models (ancestors, then the nearest "
                       "and most downloaded descendants); the rest are summarised as grey nodes: "
                       + ", ".join(f"{n:,} {r}" for r, n in sub.hidden.items()) + ".")
        else:
            st.caption(f"All {sub.total:,} models drawn. Arrows point from a derivative to its base.")
        layout = st.segmented_control("Layout", ["tree", "force"], default="tree", key="layout",
                                      help="tree: one row per generation, bases on top; force: a "
                                           "force-directed drawing") or "tree"
        from neo4j_viz.streamlit import display_widget

        widget = vg.render_widget(
            layout="hierarchical" if layout == "tree" else "forcedirected",
            layout_options={"direction": "up"} if layout == "tree" else None,
            height="560px", show_search_button=True)
        display_widget(widget, key=f"lineage_graph_{layout}")
        picked = [n for n in (widget.selected.nodeIds if widget.selected else [])
                  if n != model_id and n in sub.model_ids]
        if picked:
            st.button(f"Re-centre on {picked[0]}", key="recentre", on_click=_recentre,
                      args=(picked[0],), icon=":material/center_focus_strong:")
        else:
            st.caption("Click a model in the drawing to re-centre the page on it.")

with tab_anc:
    if tab_anc.open:
        if ancestors.empty:
            st.info(f"**{md_text(model_id)}** is a root: it names no base model.")
        else:
            roots = ancestors.loc[ancestors["is_root"], "id"].tolist()
            st.caption("Root(s): " + ", ".join(md_text(r) for r in roots))
            st.dataframe(ancestors[["id", "depth", "relation", "child", "source", "inferred",
                                    "is_root", "downloads", "likes", "createdAt", "license"]],
                         hide_index=True, key="ancestors_table",
                         column_config={"source": st.column_config.TextColumn(help=SOURCE_HELP)})
            csv_download(ancestors, "Download ancestors (CSV)",
                         f"{model_id.replace('/', '__')}_ancestors.csv", key="anc_csv")

with tab_desc:
    if tab_desc.open:
        if desc.empty:
            st.info(f"**{md_text(model_id)}** has no derivatives in the graph.")
        else:
            st.dataframe(family.depth_counts(desc), hide_index=True, key="depth_counts")
            c1, c2 = st.columns([1, 2])
            sort = c1.selectbox("Sort by", list(SORTS), key="desc_sort")
            rel_filter = c2.multiselect("Relations", list(LINEAGE_RELS), key="desc_rel",
                                        placeholder="all relations")
            col, ascending = SORTS[sort]
            table = desc[TABLE_COLUMNS].assign(dated_before_base=family.dated_before_base(desc, model))
            early = int(table["dated_before_base"].sum())
            if early:
                st.caption(f"⚠ {early:,} derivative(s) are dated before their own base (flagged in "
                           "`dated_before_base`): the Hub back-filled the creation dates of older "
                           "repositories, so these dates are not when the derivative was made.")
            if rel_filter:
                table = table[table["relation"].isin(rel_filter)]
            table = table.sort_values(col, ascending=ascending, na_position="last")
            st.dataframe(table, hide_index=True, key="descendants_table",
                         column_config={"source": st.column_config.TextColumn(help=SOURCE_HELP),
                                        "downloads": st.column_config.NumberColumn(format="%d"),
                                        "createdAt": st.column_config.DatetimeColumn(
                                            format="YYYY-MM-DD")})
            csv_download(table, "Download descendants (CSV)",
                         f"{model_id.replace('/', '__')}_descendants_d{depth}.csv", key="desc_csv")
            # the family as a graph file, built only when clicked (Gephi, Cytoscape, networkx)
            store, stem = get_store(), f"{model_id.replace('/', '__')}_family_d{depth}"
            st.download_button(
                "Download family (GraphML)", key="family_graphml", mime="application/xml",
                file_name=f"{stem}.graphml", on_click="ignore",
                data=lambda: export.to_graphml(export.family_graph(store, model_id, max_depth=depth)))
            st.download_button(
                "Download family (JSON)", key="family_json", mime="application/json",
                file_name=f"{stem}.json", on_click="ignore",
                data=lambda: export.to_json(export.family_graph(store, model_id, max_depth=depth)))

with tab_time:
    if tab_time.open:
        timeline = family.derivatives_per_month(cached(queries.derivatives_by_month, model_id))
        dated = timeline.dropna(subset=["month"])
        if dated.empty:
            st.info("No dated derivatives.")
        else:
            fig = px.bar(dated, x="month", y="n", color="relation",
                         color_discrete_map=style.RELATION_COLOURS,
                         labels={"n": "new direct derivatives", "month": ""})
            fig.update_layout(height=380, margin=dict(t=10, b=10))
            plotly_chart(fig, key="timeline_chart")
        undated = int(timeline.loc[timeline["month"].isna(), "n"].sum()) if len(timeline) else 0
        if undated:
            st.caption(f"{undated:,} derivatives have no known creation date.")

with tab_drift:
    if tab_drift.open:
        drift = family.licence_drift(desc, model)
        if desc.empty:
            st.info("No derivatives, so no licence drift.")
        elif drift.empty:
            st.success(f"All {n_desc:,} descendants keep their parent's licence.")
        else:
            counts = drift["drift"].value_counts()
            st.warning(f"{len(drift):,} of {n_desc:,} descendants state a different licence from "
                       f"their parent's: " + ", ".join(f"{n:,} {md_text(k)}" for k, n in counts.items())
                       + ".")
            st.dataframe(drift, hide_index=True, key="drift_table")
            csv_download(drift, "Download licence drift (CSV)",
                         f"{model_id.replace('/', '__')}_licence_drift.csv", key="drift_csv")
