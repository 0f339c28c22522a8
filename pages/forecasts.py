"""Forecasts: how many derivatives will a base model have in 6 or 12 months?

A thin page: the series and fits come from `analytics.forecasts` (over `analytics.growth`),
the edges and model look-ups from `graph.queries`. Results are cached per graph generation.
"""
from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from analytics import forecasts as F
from graph import queries as Q
from pages.common import cached, generation, md_text, model_picker, require_store, require_stored

RANK_HORIZONS = (6, 12)
TOP = 100
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


# --------------------------------------------------------------------------- cached data
def _stored_table():
    """The forecasts of every base model, computed by the scheduled job (analytics.pipeline)."""
    return require_stored("forecasts", "The forecasts")


@st.cache_data(show_spinner="Fitting the first months of each series…", max_entries=8)
def _table(gen: str, points_used: int | None, horizons: tuple[int, ...]):
    # only for the "points used" backtest view; the default view reads the stored table
    stored = _stored_table()
    return F.growth_table(stored.series, horizons=horizons, points_used=points_used,
                          calibration=stored.calibration)


def _model_exists(gen: str, model_id: str) -> bool:
    return cached(Q.get_model, model_id) is not None


# --------------------------------------------------------------------------- widgets
def _chart(cv, model_ids, *, log: bool, show_rejected: bool) -> go.Figure:
    fig = go.Figure()
    for i, m in enumerate(model_ids):
        d = cv[cv["model"] == m]
        if d.empty:
            continue
        color = PALETTE[i % len(PALETTE)]
        obs, held = d[d["kind"] == "observed"], d[d["kind"] == "held out"]
        fit, fc, rej = d[d["kind"] == "fit"], d[d["kind"] == "forecast"], d[d["kind"] == "rejected fit"]
        if fc["low"].notna().any():
            fig.add_trace(go.Scatter(x=fc["t"], y=fc["high"], mode="lines", line=dict(width=0),
                                     showlegend=False, hoverinfo="skip", legendgroup=m))
            fig.add_trace(go.Scatter(x=fc["t"], y=fc["low"], mode="lines", line=dict(width=0),
                                     fill="tonexty", fillcolor=_rgba(color, 0.15), name=f"{m}: 80% band",
                                     legendgroup=m, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=obs["t"], y=obs["value"], mode="markers", marker=dict(color=color, size=6),
                                 name=f"{m}: observed", legendgroup=m, customdata=obs["date"],
                                 hovertemplate="month %{x:.0f} (%{customdata|%Y-%m}): %{y:.0f}<extra></extra>"))
        if not held.empty:
            fig.add_trace(go.Scatter(x=held["t"], y=held["value"], mode="markers", legendgroup=m,
                                     marker=dict(color=color, size=7, symbol="circle-open"),
                                     name=f"{m}: observed, not used by the fit"))
        if not fit.empty:
            fig.add_trace(go.Scatter(x=fit["t"], y=fit["value"], mode="lines", line=dict(color=color),
                                     name=f"{m}: WSB fit", legendgroup=m))
        if not fc.empty:
            wsb = fc["low"].notna().any()
            fig.add_trace(go.Scatter(x=fc["t"], y=fc["value"], mode="lines", legendgroup=m,
                                     line=dict(color=color, dash="dash" if wsb else "dot"),
                                     name=f"{m}: {'WSB forecast' if wsb else 'last value (no WSB forecast)'}"))
        if show_rejected and not rej.empty:
            fig.add_trace(go.Scatter(x=rej["t"], y=rej["value"], mode="lines", legendgroup=m,
                                     line=dict(color=color, dash="dashdot", width=1), opacity=0.6,
                                     name=f"{m}: rejected WSB fit"))
    fig.update_layout(xaxis_title="months since the base model was created",
                      yaxis_title="derivatives (cumulative)", height=480, margin=dict(t=30, b=40),
                      legend=dict(orientation="h", y=-0.2))
    if log:
        fig.update_yaxes(type="log")
    return fig


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


_PARAM_COLS = {
    "lambda": st.column_config.NumberColumn("λ (fitness)", format="%.3f"),
    "mu": st.column_config.NumberColumn("μ (immediacy)", format="%.3f"),
    "sigma": st.column_config.NumberColumn("σ (longevity)", format="%.3f"),
    "c_inf": st.column_config.NumberColumn("c∞", format="%.0f", help="asymptotic number of derivatives, 100·(e^λ − 1)"),
    "r2": st.column_config.NumberColumn("R²", format="%.3f"),
    "rmsle": st.column_config.NumberColumn("RMSLE", format="%.3f"),
    "ok": st.column_config.CheckboxColumn("ok"),
    "last": st.column_config.NumberColumn("last", format="%.0f", help="derivatives at the end of the fitted months"),
}


def _pick_models(table, gen: str) -> list[str]:
    """The chosen base models: by name (type-ahead) or by author/org."""
    mode = st.radio("Choose", ["Base models", "Author / org"], horizontal=True, key="fc_mode")
    if mode == "Author / org":
        au = F.authors(table)
        if au.empty:
            st.info("No author has a base model with derivatives.")
            return []
        labels = {r.author: f"{r.author} — {r.base_models} base models, {r.derivatives} derivatives"
                  for r in au.itertuples()}
        author = st.selectbox("Author or organisation", list(labels), format_func=labels.get, key="fc_author")
        ids = F.models_of(table, author)
        return st.multiselect(f"Base models of {md_text(author)} (most derivatives first)", ids, default=ids[:5],
                              key=f"fc_author_models:{author}")
    default = [x for v in st.query_params.get_all("model") for x in v.split(",") if x]
    if not default:
        default = F.ranking(table, horizons=(RANK_HORIZONS[0],), top=3)["model"].tolist()
    options = table.summary.sort_values("observed_last", ascending=False)["model"].tolist()
    return model_picker("Base models (type to search)", key="fc_models", default=default,
                        multiple=True, options=options)


def _explain(table, gen: str, chosen: list[str]) -> list[str]:
    """Messages for models without a series; returns the ones that have one."""
    found, missing = F.lookup(table, chosen)
    for m in missing:
        if _model_exists(gen, m):
            st.info(f"**{md_text(m)}** has no dated derivatives in the graph (or is younger than one month), "
                    "so there is no growth series to show.")
        else:
            st.warning(f"Unknown model **{md_text(m)}**: no model with this id in the graph.")
    return found


def main() -> None:
    st.title("Adoption forecasts")
    st.caption("Cumulative derivatives (fine-tunes, adapters, quantizations, merges) per month since a base "
               "model's creation, fitted with the Wang–Song–Barabási model "
               "c(t) = m·(exp(λ·Φ((ln t − μ)/σ)) − 1), m = 100. Only fits that pass every check are "
               "extrapolated; otherwise the forecast is the last observed count.")
    store = require_store()
    if store is None:
        return
    gen = generation().key
    stored = _stored_table()
    series = stored.series
    if len(series) == 0:
        st.info("The graph has no base model with dated derivatives yet: nothing to forecast.")
        return

    c1, c2, c3 = st.columns([2, 2, 1])
    months_ahead = c1.slider("Forecast horizon (months)", 1, 36, 12, key="fc_horizon")
    max_k = int(series.n_obs.max())
    points = c2.select_slider("Points used: fit on the first k months", ["all", *range(3, max_k + 1)],
                              value="all", key="fc_points",
                              help="Fit each series on its first k months only; the later months stay on "
                                   "the chart as open circles, to compare with the forecast.")
    log = c3.checkbox("Log scale", key="fc_log")
    show_rejected = c3.checkbox("Show rejected fits", key="fc_rejected")
    points_used = None if points == "all" else int(points)
    horizons = tuple(sorted({*RANK_HORIZONS, months_ahead}))
    table = stored if points_used is None else _table(gen, points_used, horizons)
    as_of = series.as_of
    st.caption(f"{len(table):,} base models with derivatives; {int(table.summary['ok'].sum()):,} fits pass "
               f"every check. Observed up to {as_of:%Y-%m-%d}." if as_of is not None else "")

    chosen = _pick_models(table, gen)
    found = _explain(table, gen, chosen)
    if found:
        cv = F.curves(table, found, months_ahead=months_ahead)
        st.plotly_chart(_chart(cv, found, log=log, show_rejected=show_rejected), key="fc_chart")
        params = F.parameters(table, found)
        for r in params.itertuples():
            if not r.ok:
                st.warning(f"No WSB forecast for **{md_text(r.model)}**: {md_text(r.reason)}. Showing the last observed "
                           f"count ({r.last:,.0f}) held flat.")
            if r.parent_date_imputed:
                st.caption(f"{md_text(r.model)}: creation date unknown in the graph (Hub back-fill); month 0 is the "
                           "month of its first dated derivative.")
        st.subheader("Parameters")
        st.dataframe(params, hide_index=True, column_config=_PARAM_COLS, key="fc_params")
        st.download_button("Download these parameters (CSV)", F.table_csv(params), "forecast-parameters.csv",
                           "text/csv", key="fc_dl_params")
        st.caption(F.band_note(table))

    st.subheader("Ranking of base models")
    r1, r2 = st.columns([3, 1])
    include = r2.checkbox("Include flagged fits (at their last value)", key="fc_rank_all")
    by = r1.radio("Rank by", [f"derivatives in {h} months" for h in RANK_HORIZONS] + ["fitness λ"],
                  horizontal=True, key="fc_rank_by")
    rank = F.ranking(table, horizons=RANK_HORIZONS, ok_only=not include)
    key = "rank_fitness" if by == "fitness λ" else f"rank_{by.split()[2]}m"
    rank = rank.sort_values(key, kind="stable", na_position="last")
    st.dataframe(rank.head(TOP), hide_index=True, column_config=_PARAM_COLS, key="fc_ranking")
    st.download_button(f"Download the ranking ({len(rank):,} models, CSV)", F.table_csv(rank),
                       "forecast-ranking.csv", "text/csv", key="fc_dl_rank")


main()
