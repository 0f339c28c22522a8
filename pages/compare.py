"""Compare 2–5 models side by side: family size by relation and generation, growth curves
and forecasts on one chart, licence mix, top derivatives.
Deep link: `?models=org/a,org/b` (comma-separated ids)."""
from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics import compare
from graph import queries
from graph.insights import RELATION_COLOURS
from pages.common import cached, csv_download, id_links, require_store

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")

st.title("Compare models")
require_store()

wanted = [m for m in st.query_params.get("models", "").split(",") if m.strip()]
bases = cached(queries.top_base_models, limit=300)["id"].tolist()
known = [m for m in wanted if cached(queries.get_model, m) is not None]
if "compare_models" not in st.session_state:
    st.session_state["compare_models"] = known[:compare.MAX_MODELS]
options = list(dict.fromkeys(known + bases))
ids = st.multiselect("Models (2–5)", options, key="compare_models",
                     max_selections=compare.MAX_MODELS,
                     placeholder="type a model id (the 300 biggest base models are listed)")
unknown = [m for m in wanted if m not in known]
if unknown:
    st.warning("Not in the graph: " + ", ".join(unknown))
if ids:
    st.query_params["models"] = ",".join(ids)
elif "models" in st.query_params:
    del st.query_params["models"]
if len(ids) < 2:
    st.info("Pick two to five models, e.g. the biggest base models listed above. The URL "
            "carries `?models=…` so a comparison can be shared.")
    st.stop()

cmp = cached(compare.compare_models, tuple(ids))
colour = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(ids)}
for mid in ids:
    id_links(mid)
st.dataframe(cmp.overview, hide_index=True, key="compare_overview",
             column_config={"createdAt": st.column_config.DatetimeColumn(format="YYYY-MM-DD"),
                            "direct": st.column_config.NumberColumn("children"),
                            "generations": st.column_config.NumberColumn("depth")})

left, right = st.columns(2)
with left:
    st.markdown("**Family by relation** (descendants at any depth)")
    fig = px.bar(cmp.by_relation, x="model", y="n", color="relation",
                 color_discrete_map=RELATION_COLOURS, labels={"n": "descendants", "model": ""})
    fig.update_layout(height=380, margin=dict(t=10, b=10))
    st.plotly_chart(fig, key="by_relation_chart")
with right:
    st.markdown("**Family by generation**")
    fig = px.bar(cmp.by_depth, x="depth", y="n", color="model", barmode="group",
                 color_discrete_map=colour, labels={"n": "descendants", "depth": "generation"})
    fig.update_layout(height=380, margin=dict(t=10, b=10), showlegend=False)
    st.plotly_chart(fig, key="by_generation_chart")

st.markdown("**Growth and forecast** (cumulative direct derivatives; dashed: WSB forecast "
            "where the fit passes every check, dotted: last value held where it does not)")
log = st.toggle("Log scale", value=False, key="compare_log")
fig = go.Figure()
for mid in ids:
    d = cmp.curves[cmp.curves["model"] == mid] if len(cmp.curves) else cmp.curves
    for kind, style in (("observed", dict(mode="markers")),
                        ("fit", dict(mode="lines")),
                        ("forecast", dict(mode="lines", line=dict(dash="dash")))):
        part = d[d["kind"] == kind] if len(d) else d
        if len(part):
            fig.add_trace(go.Scatter(x=part["t"], y=part["value"], name=f"{mid}: {kind}",
                                     legendgroup=mid, marker=dict(color=colour[mid]),
                                     line=dict(color=colour[mid], **style.get("line", {})),
                                     mode=style["mode"]))
fig.update_layout(height=460, margin=dict(t=10, b=10), legend=dict(orientation="h", y=-0.25),
                  xaxis_title="months since the base model was created",
                  yaxis_title="derivatives", yaxis_type="log" if log else "linear")
st.plotly_chart(fig, key="growth_chart")
st.caption("Forecast bands and the fit's checks: see the Forecasts page.")

left, right = st.columns(2)
with left:
    st.markdown("**Licence mix of the descendants**")
    fig = px.bar(cmp.licence_mix, x="model", y="share", color="licence",
                 labels={"share": "share of descendants", "model": ""})
    fig.update_layout(height=380, margin=dict(t=10, b=10), yaxis_tickformat=".0%")
    st.plotly_chart(fig, key="licence_mix_chart")
with right:
    st.markdown("**Top derivatives** (most downloaded)")
    pick = st.selectbox("Of", ids, key="compare_top_of")
    st.dataframe(cmp.top_derivatives[cmp.top_derivatives["model"] == pick], hide_index=True,
                 key="top_derivatives")
csv_download(cmp.overview, "Download the comparison (CSV)", "comparison.csv", key="compare_csv")
