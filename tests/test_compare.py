"""analytics/compare.py on the mini graph: every figure against graph.queries directly."""
from __future__ import annotations

import pandas as pd
import pytest

from analytics import compare as C
from graph import queries as q

PHI2, GPT2, SDXL = ("microsoft/phi-2", "openai-community/gpt2",
                    "stabilityai/stable-diffusion-xl-base-1.0")


@pytest.fixture(scope="module")
def mini_store(mini_graph_root):
    from graph.store import open_store

    store = open_store(read_only=True, root=mini_graph_root)
    yield store
    store.close()


@pytest.fixture(scope="module")
def forecasts(mini_graph_root):
    """The forecasts table the scheduled job stored for the mini graph."""
    from analytics.forecasts import ForecastTable
    from analytics.pipeline import FORECASTS
    from analytics.results import Results
    from graph.generations import Generations
    from graph.store import Generation

    folder = Generations(mini_graph_root).current_path().parent
    return ForecastTable.load(Results(Generation("embedded", folder.name, folder))
                              .folder(FORECASTS))


@pytest.fixture(scope="module")
def comparison(mini_store, forecasts):
    return C.compare_models(mini_store, (PHI2, GPT2, SDXL, "no-such/model"), forecasts=forecasts)


def test_overview_matches_the_lineage_queries(mini_store, comparison):
    ov = comparison.overview.set_index("id")
    assert list(ov.index) == [PHI2, GPT2, SDXL] and comparison.missing == ["no-such/model"]
    for mid in ov.index:
        desc = q.descendants(mini_store, mid, 10)
        assert ov.at[mid, "descendants"] == len(desc) == q.family_size(mini_store, mid)
        assert ov.at[mid, "direct"] == sum(q.descendant_counts(mini_store, mid).values())
        assert ov.at[mid, "generations"] == desc["depth"].max()
        for rel, n in desc["relation"].value_counts().items():
            assert ov.at[mid, rel] == n
    assert ov.at[PHI2, "generations"] == 3 and ov.at[GPT2, "adapter"] > 0


def test_generations_licences_and_top_derivatives(mini_store, comparison):
    gen = comparison.by_generation
    assert gen.groupby("model")["n"].sum().to_dict() == \
        comparison.overview.set_index("id")["descendants"].to_dict()
    assert comparison.by_depth.groupby("model")["n"].sum().to_dict() == \
        comparison.by_relation.groupby("model")["n"].sum().to_dict()
    mix = comparison.licence_mix
    assert mix.groupby("model")["share"].sum().round(9).eq(1.0).all()
    phi = mix[mix["model"] == PHI2].set_index("licence")["n"]
    desc = q.descendants(mini_store, PHI2, 10)
    assert phi["mit"] == (desc["license"] == "mit").sum()
    assert phi["(none)"] == desc["license"].isna().sum()
    top = comparison.top_derivatives
    phi_top = top[top["model"] == PHI2]
    assert len(phi_top) == 10
    assert phi_top["downloads"].fillna(-1).is_monotonic_decreasing
    assert phi_top["downloads"].iat[0] == desc["downloads"].max()


def test_growth_curves_are_the_stored_forecasts(comparison, forecasts):
    """The chart shows what the Forecasts page shows: the stored observed months, WSB curve
    and forecast path, nothing fitted again."""
    from analytics import forecasts as F

    cv = comparison.curves
    assert set(cv["model"]) == {PHI2, GPT2, SDXL}
    series, paths = F.chart_data(forecasts, [PHI2, GPT2, SDXL])
    for mid, g in cv.groupby("model"):
        obs = g[g["kind"] == "observed"]["value"]
        want = series[series["model"] == mid]["observed"]
        assert obs.tolist() == want.tolist() and obs.is_monotonic_increasing
        fit = g[g["kind"] == "fit"]["value"]
        assert fit.tolist() == series[series["model"] == mid]["wsb_fit"].dropna().tolist()
        fc = g[g["kind"] == "forecast"]
        path = paths[paths["model"] == mid]
        assert fc["value"].iat[0] == obs.iat[-1]  # the forecast starts at the last count
        assert fc["value"].iloc[1:].tolist() == path["forecast"].tolist()
        assert len(fc) == 13 and (fc["low"] <= fc["value"]).all()  # 12 months ahead
    short = C.growth_curves(forecasts, [PHI2], months_ahead=3)
    assert (short["kind"] == "forecast").sum() == 4


def test_no_stored_forecasts_no_curves(mini_store):
    c = C.compare_models(mini_store, [PHI2, GPT2])
    assert c.curves.empty and list(c.curves.columns) == C.CURVE_COLUMNS
    assert len(c.overview) == 2


def test_at_most_five_models_and_licence_mix_lumping():
    assert C.MAX_MODELS == 5
    desc = pd.DataFrame({"license": ["a"] * 5 + ["b"] * 3 + ["c", "d", None, ""]})
    mix = C.licence_mix(desc, top=2).set_index("licence")["n"]
    assert mix.to_dict() == {"a": 5, "b": 3, "(other)": 2, "(none)": 2}
    assert C.licence_mix(desc.iloc[:0]).empty


def test_compare_caps_at_five(mini_store):
    ids = [PHI2, GPT2, SDXL, "meta-llama/Meta-Llama-3-8B", "mistralai/Mistral-7B-v0.1",
           "distilbert/distilbert-base-uncased"]
    c = C.compare_models(mini_store, ids)
    assert len(c.overview) == 5 and "distilbert/distilbert-base-uncased" not in set(c.overview.id)
