"""Forecasts: how many new derivatives will a base model get in the next 3, 6 or 12 months?

The page only reads the forecasts table (`analytics.forecasts.ForecastTable`) that the
scheduled job stores per graph generation (`analytics.pipeline`); it fits nothing.
"""
from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from analytics import forecasts as F
from analytics.pipeline import FORECASTS
from app_pages.charts import plotly_chart
from app_pages.common import cached, generation, md_text, require_store, require_stored
from app_pages.style import rgba
from graph import queries as Q

HORIZONS = (3, 6, 12)
TOP = 100
OFFERED = 1000  # base models offered in the picker
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def _model_exists(gen: str, model_id: str) -> bool:
    return cached(Q.get_model, model_id) is not None


# --------------------------------------------------------------------------- widgets
_INT = "localized"
_COLS = {
    "rank": st.column_config.NumberColumn("rank", format=_INT),
    "model": st.column_config.TextColumn("base model"),
    "derivatives": st.column_config.NumberColumn(
        "dated derivatives", format=_INT,
        help="Direct derivatives with a known creation date up to the data's as-of date: the "
             "series the forecast continues. The Lineage page counts every direct derivative, "
             "dated or not (the Hub back-filled the dates of older repos)."),
    "derivatives_total": st.column_config.NumberColumn(
        "all direct derivatives", format=_INT,
        help="Every direct derivative in the graph, dated or not: the Lineage page's count."),
    "growth_months": st.column_config.NumberColumn("months observed", format=_INT),
    "growth_lambda": st.column_config.NumberColumn("λ (fitness)", format="%.3f"),
    "growth_mu": st.column_config.NumberColumn("μ (immediacy)", format="%.3f"),
    "growth_sigma": st.column_config.NumberColumn("σ (longevity)", format="%.3f"),
    "growth_c_inf": st.column_config.NumberColumn("c∞", format=_INT,
                                                  help="WSB asymptote, 100·(e^λ − 1)"),
    "growth_r2": st.column_config.NumberColumn("R²", format="%.3f"),
    "growth_rmsle": st.column_config.NumberColumn("RMSLE", format="%.3f"),
    "growth_fit_ok": st.column_config.CheckboxColumn("WSB fit ok"),
    "growth_fit_failed": st.column_config.TextColumn("failed checks (value vs threshold)"),
    "forecast_method": st.column_config.TextColumn("forecast method"),
}
for _h in HORIZONS:
    _COLS[f"forecast_{_h}m"] = st.column_config.NumberColumn(f"in {_h} months", format=_INT)
    _COLS[f"forecast_{_h}m_low"] = st.column_config.NumberColumn(f"{_h}m: 80% low", format=_INT)
    _COLS[f"forecast_{_h}m_high"] = st.column_config.NumberColumn(f"{_h}m: 80% high",
                                                                  format=_INT)
    _COLS[f"forecast_growth_{_h}m"] = st.column_config.NumberColumn(f"new in {_h} months",
                                                                    format=_INT)


def _chart(table, model_ids, *, months_ahead: int, log: bool) -> go.Figure:
    series, paths = F.chart_data(table, model_ids)
    fig = go.Figure()
    for i, m in enumerate(model_ids):
        color = PALETTE[i % len(PALETTE)]
        obs = series[series["model"] == m]
        path = paths[(paths["model"] == m) & (paths["months_ahead"] <= months_ahead)]
        fig.add_trace(go.Scatter(x=obs["date"], y=obs["observed"], mode="markers+lines",
                                 marker=dict(color=color, size=6), line=dict(color=color, width=1),
                                 name=f"{m}: observed", legendgroup=m,
                                 hovertemplate="%{x|%Y-%m}: %{y:,.0f}<extra></extra>"))
        fit = obs[obs["wsb_fit"].notna()]
        if not fit.empty:
            fig.add_trace(go.Scatter(x=fit["date"], y=fit["wsb_fit"], mode="lines",
                                     line=dict(color=color, dash="dot", width=1),
                                     name=f"{m}: WSB curve", legendgroup=m,
                                     hovertemplate="%{x|%Y-%m}: %{y:,.1f}<extra></extra>"))
        if path.empty or obs.empty:
            continue
        start = obs.iloc[[-1]]
        last = float(start["observed"].iloc[0])
        x = [start["date"].iloc[0], *path["date"]]
        if (path["high"] > last).any():
            fig.add_trace(go.Scatter(x=x, y=[last, *path["high"]], mode="lines",
                                     line=dict(width=0), showlegend=False, hoverinfo="skip",
                                     legendgroup=m))
            fig.add_trace(go.Scatter(x=x, y=[last, *path["low"]], mode="lines",
                                     line=dict(width=0), fill="tonexty",
                                     fillcolor=rgba(color, 0.15), name=f"{m}: 80% range",
                                     legendgroup=m, hoverinfo="skip"))
        # no flat line is drawn as a forecast: the median is drawn only where it rises
        if (path["forecast"] > last).any():
            fig.add_trace(go.Scatter(x=x, y=[last, *path["forecast"]], mode="lines",
                                     line=dict(color=color, dash="dash"),
                                     name=f"{m}: forecast (median)", legendgroup=m,
                                     hovertemplate="%{x|%Y-%m}: %{y:,.0f}<extra></extra>"))
    fig.update_layout(xaxis_title="month", yaxis_title="derivatives (cumulative)", height=480,
                      margin=dict(t=30, b=40), legend=dict(orientation="h", y=-0.2))
    if log:
        fig.update_yaxes(type="log")
    return fig


def _pick_models(table) -> list[str]:
    """The chosen base models: by id or by author/org."""
    mode = st.radio("Choose", ["Base models", "Author / org"], horizontal=True, key="fc_mode")
    if mode == "Author / org":
        au = F.authors(table)
        if au.empty:
            st.info("No author has a base model with derivatives.")
            return []
        labels = {r.author: f"{r.author} — {r.base_models:,} base models, "
                            f"{r.derivatives:,} derivatives" for r in au.itertuples()}
        author = st.selectbox("Author or organisation", list(labels), format_func=labels.get,
                              key="fc_author")
        ids = F.models_of(table, author)
        return st.multiselect(f"Base models of {author} (most derivatives first)", ids,
                              default=ids[:5], key=f"fc_author_models:{author}")
    default = [x for v in st.query_params.get_all("model") for x in v.split(",") if x]
    if not default:
        default = F.ranking(table, horizon=12, top=3)["model"].tolist()
    # the base models with most derivatives (every option travels to the browser with each
    # page: all 12.7k of the full graph cost seconds); any other comes by `?model=`
    options = table.models.nlargest(OFFERED, "derivatives")["model"].tolist()
    known = set(options)
    options = [d for d in default if d not in known] + options
    return st.multiselect(f"Base models (type to search the {OFFERED:,} with most derivatives; "
                          "any other by `?model=`)", options, default=default,
                          key="fc_models", placeholder="type a model id…")


def _explain_missing(gen: str, missing: list[str]) -> None:
    for m in missing:
        if _model_exists(gen, m):
            st.info(f"{md_text(m)} has no dated derivatives in the graph (or is younger than one "
                    "month), so there is no growth series to show.")
        else:
            st.warning(f"Unknown model {md_text(m)}: no model with this id in the graph.")


def main() -> None:
    st.title("Adoption forecasts")
    require_store()
    gen = generation().key
    table = require_stored(FORECASTS, "The forecasts")
    if len(table) == 0:
        st.info("The graph has no base model with dated derivatives yet: nothing to forecast.")
        return
    meta = table.meta
    as_of = str(meta.get("as_of") or "")[:10]
    st.caption(
        f"New derivatives (fine-tunes, adapters, quantizations, merges) per base model, observed "
        f"up to {as_of}. Forecasts: {meta.get('method_text', meta.get('method'))}; the 80% "
        f"range is calibrated on the latest outcomes of each horizon. WSB parameters "
        f"(c(t) = m·(exp(λ·Φ((ln t − μ)/σ)) − 1), m = 100) are given where the curve fit "
        f"passes every check ({meta.get('n_fit_ok', 0):,} of {len(table):,} base models).")

    c1, c2 = st.columns([3, 1])
    months_ahead = c1.slider("Months ahead on the chart", 1, int(meta.get("path_months", 12)),
                             12, key="fc_horizon")
    log = c2.checkbox("Log scale", key="fc_log")
    chosen = _pick_models(table)
    found, missing = F.lookup(table, chosen)
    _explain_missing(gen, missing)
    if found:
        for m in found:
            st.markdown(F.describe(table, m, horizon=12, name=md_text(m)))
            counts = F.derivative_counts(table, m)
            if counts is not None:  # the Lineage page's count, and why this one differs
                st.caption(f"{md_text(m)}: {counts.sentence()}")
            r = table.models.iloc[table.row[m]]
            if not r["growth_fit_ok"]:
                st.caption(f"{md_text(m)}: WSB parameters not shown — the curve fit failed these checks: "
                           f"{r['growth_fit_failed']}.")
            if r["parent_date_imputed"]:
                st.caption(f"{md_text(m)}: creation date unknown in the graph (Hub back-fill); month 0 is "
                           "the month of its first dated derivative.")
        plotly_chart(_chart(table, found, months_ahead=months_ahead, log=log), key="fc_chart")
        params = F.parameters(table, found)
        wsb = ["growth_lambda", "growth_mu", "growth_sigma", "growth_c_inf"]
        params.loc[~params["growth_fit_ok"].astype(bool), wsb] = None
        st.subheader("Parameters and forecasts")
        st.dataframe(params, hide_index=True, column_config=_COLS, key="fc_params")
        st.download_button("Download these rows (CSV)", lambda: F.table_csv(params),
                           "forecast-parameters.csv", "text/csv", key="fc_dl_params",
                           on_click="ignore")

    st.subheader("Base models by predicted growth")
    h = st.radio("New derivatives expected in", [f"{x} months" for x in HORIZONS], index=2,
                 horizontal=True, key="fc_rank_by")
    horizon = int(h.split()[0])
    rank = F.ranking(table, horizon=horizon)
    st.dataframe(rank.head(TOP), hide_index=True, column_config=_COLS, key="fc_ranking")
    st.download_button(f"Download the ranking ({len(rank):,} base models, CSV)",  # built on click
                       lambda: F.table_csv(rank), "forecast-ranking.csv", "text/csv",
                       key="fc_dl_rank", on_click="ignore")
    with st.expander("How good is the method? Backtest at the latest origins"):
        skill = table.skill
        if skill.empty:
            st.write("Too little history in this graph to backtest the method.")
        else:
            st.caption("Fitted on the graph cut off at each of the latest origins with observed "
                       "outcomes, scored 3, 6 and 12 months later; error = |log(1+forecast) − "
                       "log(1+observed)| (mae: mean, mdae: median), mdape: median % error of "
                       "the count, coverage: share of outcomes inside the 80% range.")
            st.dataframe(skill, hide_index=True, key="fc_skill")


main()
