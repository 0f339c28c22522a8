"""Compare 2–5 models side by side: family size by relation and generation, growth curves
and forecasts on one chart, licence mix, top derivatives.

`compare_models` reads each model's family once (`graph.queries.descendants`, per id) and takes
the growth curves and forecasts from the forecasts table the scheduled job stored
(`analytics.forecasts.ForecastTable`): nothing is fitted on a page request.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from graph.dates import utc_times
from graph.schema import LINEAGE_RELS
from graph.store import GraphStore

if TYPE_CHECKING:
    from analytics.forecasts import ForecastTable

MAX_MODELS = 5
OVERVIEW_COLUMNS = ["id", "author", "license", "createdAt", "downloads", "likes", "descendants",
                    "direct", "generations", *LINEAGE_RELS]


@dataclass
class Comparison:
    """Frames, each with a `model` column (in the order asked):

    overview: one row per model (OVERVIEW_COLUMNS; relation columns count descendants at
        any depth by the relation of their own edge, direct = depth 1).
    by_generation: model, depth, relation, n.
    by_relation: model, relation, n (descendants per relation, zeros left out).
    by_depth: model, depth, n (descendants per generation).
    licence_mix: model, licence, n, share (descendants; '(none)' = no licence stated).
    top_derivatives: model, id, depth, relation, downloads, likes, license.
    curves: `growth_curves` rows (model, date, kind, value, low, high).
    missing: asked ids not in the graph.
    """

    overview: pd.DataFrame
    by_generation: pd.DataFrame
    by_relation: pd.DataFrame
    by_depth: pd.DataFrame
    licence_mix: pd.DataFrame
    top_derivatives: pd.DataFrame
    curves: pd.DataFrame
    missing: list[str]


def licence_mix(desc: pd.DataFrame, top: int = 6) -> pd.DataFrame:
    """Descendants per stated licence, the `top` commonest named, the rest '(other)'."""
    if desc.empty:
        return pd.DataFrame(columns=["licence", "n", "share"])
    lic = desc["license"].astype(object).where(desc["license"].notna() & (desc["license"] != ""),
                                               "(none)")
    counts = lic.value_counts()
    named = [c for c in counts.index if c != "(none)"][:top]
    lic = lic.where(lic.isin(named + ["(none)"]), "(other)")
    out = lic.value_counts().rename_axis("licence").rename("n").reset_index()
    out["share"] = out["n"] / out["n"].sum()
    return out


CURVE_COLUMNS = ["model", "date", "kind", "value", "low", "high"]


def growth_curves(forecasts: "ForecastTable | None", model_ids: list[str], *,
                  months_ahead: int = 12) -> pd.DataFrame:
    """The stored curves of the given base models, one frame for one chart: observed
    cumulative derivatives per month, the WSB curve where its fit passed every check, and the
    forecast median with its 80% band from the last observed month up to `months_ahead`
    (CURVE_COLUMNS; kind is observed, fit or forecast). Models without a forecast (no dated
    derivatives) are left out."""
    from analytics import forecasts as F

    if forecasts is None or not len(forecasts):
        return pd.DataFrame(columns=CURVE_COLUMNS)
    series, paths = F.chart_data(forecasts, model_ids)
    frames = []
    for mid in model_ids:
        obs = series[series["model"] == mid]
        if obs.empty:
            continue
        frames.append(pd.DataFrame({"model": mid, "date": obs["date"], "kind": "observed",
                                    "value": obs["observed"], "low": None, "high": None}))
        fit = obs[obs["wsb_fit"].notna()]
        if len(fit):
            frames.append(pd.DataFrame({"model": mid, "date": fit["date"], "kind": "fit",
                                        "value": fit["wsb_fit"], "low": None, "high": None}))
        path = paths[(paths["model"] == mid) & (paths["months_ahead"] <= months_ahead)]
        if len(path):
            last = obs.iloc[-1]
            start = pd.DataFrame({"model": [mid], "date": [last["date"]], "kind": ["forecast"],
                                  "value": [last["observed"]], "low": [last["observed"]],
                                  "high": [last["observed"]]})
            frames.append(pd.concat([start, pd.DataFrame({
                "model": mid, "date": path["date"], "kind": "forecast",
                "value": path["forecast"], "low": path["low"], "high": path["high"]})]))
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    out = pd.concat(frames, ignore_index=True)[CURVE_COLUMNS]
    out["date"] = utc_times(out["date"])
    for col in ("value", "low", "high"):
        out[col] = pd.to_numeric(out[col], errors="coerce")
    return out


def compare_models(store: GraphStore, model_ids: tuple[str, ...] | list[str], *,
                   forecasts: "ForecastTable | None" = None, max_depth: int = 10,
                   top: int = 10, months_ahead: int = 12) -> Comparison:
    """Everything the Compare page shows for up to `MAX_MODELS` models: per-id graph reads,
    and the curves from the stored `forecasts` table (none without one)."""
    from graph import queries as q

    ids = list(dict.fromkeys(model_ids))[:MAX_MODELS]
    overview, gens, mixes, tops, missing = [], [], [], [], []
    for mid in ids:
        model = q.get_model(store, mid)
        if model is None:
            missing.append(mid)
            continue
        desc = q.descendants(store, mid, max_depth)
        per_rel = desc["relation"].value_counts() if len(desc) else pd.Series(dtype=int)
        overview.append({"id": mid, "author": model.author, "license": model.license,
                         "createdAt": model.created_at, "downloads": model.downloads,
                         "likes": model.likes, "descendants": len(desc),
                         "direct": int((desc["depth"] == 1).sum()) if len(desc) else 0,
                         "generations": int(desc["depth"].max()) if len(desc) else 0,
                         **{r: int(per_rel.get(r, 0)) for r in LINEAGE_RELS}})
        if len(desc):
            g = desc.groupby(["depth", "relation"]).size().rename("n").reset_index()
            gens.append(g.assign(model=mid))
            tops.append(desc.sort_values(["downloads", "id"], ascending=[False, True],
                                         na_position="last").head(top)
                        [["id", "depth", "relation", "downloads", "likes", "license"]]
                        .assign(model=mid))
        mixes.append(licence_mix(desc).assign(model=mid))
    found = [o["id"] for o in overview]
    curves = growth_curves(forecasts, found, months_ahead=months_ahead)

    def cat(frames: list[pd.DataFrame], cols: list[str]) -> pd.DataFrame:
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame(columns=cols)
        return pd.concat(frames, ignore_index=True)[cols]

    ov = pd.DataFrame(overview, columns=OVERVIEW_COLUMNS)
    by_gen = cat(gens, ["model", "depth", "relation", "n"])
    by_rel = ov.melt(id_vars="id", value_vars=list(LINEAGE_RELS), var_name="relation",
                     value_name="n").rename(columns={"id": "model"})
    return Comparison(
        overview=ov, by_generation=by_gen,
        by_relation=by_rel[by_rel["n"] > 0].reset_index(drop=True),
        by_depth=by_gen.groupby(["model", "depth"], as_index=False, sort=False)["n"].sum(),
        licence_mix=cat(mixes, ["model", "licence", "n", "share"]),
        top_derivatives=cat(tops, ["model", "id", "depth", "relation", "downloads", "likes",
                                   "license"]),
        curves=curves, missing=missing)
