"""Compare 2–5 models side by side: family size by relation and generation, growth curves
and forecasts on one chart, licence mix, top derivatives.
Deep link: `?models=org/a,org/b` (comma-separated ids)."""
from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from analytics import compare
from analytics.pipeline import FORECASTS
from app_pages.charts import plotly_chart
from app_pages.common import cached, csv_download, id_links, require_store, stored
from app_pages.style import RELATION_COLOURS, rgba
from graph import queries

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


OFFERED = 300  # base models listed in the picker (most derivatives first)


st.title("Compare models")
require_store()
# the forecasts the scheduled job stored: the curves, and the base models the picker offers
found = stored(FORECASTS)
table = found.value if found is not None else None
wanted = [m for m in st.query_params.get("models", "").split(",") if m.strip()]
bases = ([] if table is None else table.models.sort_values(
    ["derivatives", "model"], ascending=[False, True])["model"].head(OFFERED).tolist())
known = [m for m in wanted if cached(queries.get_model, m) is not None]
if "compare_models" not in st.session_state:
    st.session_state["compare_models"] = known[:compare.MAX_MODELS]
options = list(dict.fromkeys(known + bases))
ids = st.multiselect("Models (2–5)", options, key="compare_models",
                     max_selections=compare.MAX_MODELS,
                     placeholder=f"type a model id (the {OFFERED} biggest base models are listed)")
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

cmp = cached(compare.compare_models, tuple(ids))  # per-id reads of each family
curves = compare.growth_curves(table, cmp.overview["id"].tolist())  # from the stored table
colour = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(ids)}
for mid in ids:
    id_links(mid)
st.dataframe(cmp.overview, hide_index=True, key="compare_overview",
             column_config={"createdAt": st.column_config.DatetimeColumn(format="YYYY-MM-DD"),
                            "direct": st.column_config.NumberColumn("children"),
                            "generations": st.column_config.NumberColumn("depth")})

# one figure with two panels: every plotly chart costs a fresh tab ~0.3 s to draw
st.markdown("**Family by relation** (descendants at any depth) and **by generation**")
fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08)
for rel, part in cmp.by_relation.groupby("relation", sort=False):
    fig.add_trace(go.Bar(x=part["model"], y=part["n"], name=rel, legendgroup="relation",
                         marker_color=RELATION_COLOURS.get(rel)), row=1, col=1)
for mid, part in cmp.by_depth.groupby("model", sort=False):
    fig.add_trace(go.Scatter(x=part["depth"], y=part["n"], name=mid, showlegend=False,
                             mode="lines+markers", marker_color=colour.get(mid),
                             line_color=colour.get(mid), hovertemplate=f"{mid}<br>generation "
                             "%{x}: %{y} descendants<extra></extra>"), row=1, col=2)
fig.update_layout(height=380, margin=dict(t=10, b=10), barmode="stack")
fig.update_yaxes(title_text="descendants", row=1, col=1)
fig.update_xaxes(title_text="generation (model colours as in the growth chart)", dtick=1,
                 row=1, col=2)
# generation 1 holds most of a family: a log axis keeps the deeper ones visible
fig.update_yaxes(type="log", title_text="descendants (log)", row=1, col=2)
plotly_chart(fig, key="family_chart")

st.markdown("**Growth and forecast** (cumulative direct derivatives per month; dotted: the "
            "WSB curve where its fit passes every check; dashed: the forecast median, shaded: "
            "its 80% range)")
if table is None:
    st.caption("The forecasts are not computed yet for this graph (the scheduled job builds "
               "them after each ingest).")
elif not found.current:
    st.caption(f"Curves from the previous generation's forecasts ({found.generation}).")
log = st.toggle("Log scale", value=False, key="compare_log")
fig = go.Figure()
for mid in ids:
    d = curves[curves["model"] == mid]
    c = colour[mid]
    obs, fit, fc = (d[d["kind"] == k] for k in ("observed", "fit", "forecast"))
    if len(obs):
        fig.add_trace(go.Scatter(x=obs["date"], y=obs["value"], mode="markers+lines",
                                 name=f"{mid}: observed", legendgroup=mid,
                                 marker=dict(color=c, size=5), line=dict(color=c, width=1)))
    if len(fit):
        fig.add_trace(go.Scatter(x=fit["date"], y=fit["value"], mode="lines",
                                 name=f"{mid}: WSB curve", legendgroup=mid,
                                 line=dict(color=c, dash="dot", width=1)))
    if len(fc) > 1 and (fc["value"].iloc[1:] > fc["value"].iat[0]).any():
        # the band first, then the median over it; no flat line is drawn as a forecast
        fig.add_trace(go.Scatter(x=fc["date"], y=fc["high"], mode="lines", line=dict(width=0),
                                 showlegend=False, hoverinfo="skip", legendgroup=mid))
        fig.add_trace(go.Scatter(x=fc["date"], y=fc["low"], mode="lines", line=dict(width=0),
                                 fill="tonexty", fillcolor=rgba(c, 0.15),
                                 name=f"{mid}: 80% range", legendgroup=mid, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=fc["date"], y=fc["value"], mode="lines",
                                 name=f"{mid}: forecast", legendgroup=mid,
                                 line=dict(color=c, dash="dash")))
fig.update_layout(height=460, margin=dict(t=10, b=10), legend=dict(orientation="h", y=-0.25),
                  xaxis_title="month", yaxis_title="derivatives (cumulative)",
                  yaxis_type="log" if log else "linear")
plotly_chart(fig, key="growth_chart")
st.caption("Forecast bands and the fit's checks: see the Forecasts page.")

left, right = st.columns(2)
with left:
    st.markdown("**Licence mix of the descendants**")
    fig = px.bar(cmp.licence_mix, x="model", y="share", color="licence",
                 labels={"share": "share of descendants", "model": ""})
    fig.update_layout(height=380, margin=dict(t=10, b=10), yaxis_tickformat=".0%")
    plotly_chart(fig, key="licence_mix_chart")
with right:
    st.markdown("**Top derivatives** (most downloaded)")
    pick = st.selectbox("Of", ids, key="compare_top_of")
    st.dataframe(cmp.top_derivatives[cmp.top_derivatives["model"] == pick], hide_index=True,
                 key="top_derivatives")
csv_download(cmp.overview, "Download the comparison (CSV)", "comparison.csv", key="compare_csv")
