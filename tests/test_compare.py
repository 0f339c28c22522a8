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
def comparison(mini_store):
    return C.compare_models(mini_store, (PHI2, GPT2, SDXL, "no-such/model"))


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


def test_growth_series_input_equals_the_derivative_edges(mini_store):
    """The curves are built from each model's direct children: the same rows as
    graph.queries.derivative_edges restricted to those parents."""
    from analytics import forecasts as F
    from graph import views_queries as vq

    ids = [PHI2, GPT2]
    direct = C.growth_curves(vq.derivative_edges_of(mini_store, ids), ids)
    mine = C.compare_models(mini_store, ids).curves
    pd.testing.assert_frame_equal(direct.reset_index(drop=True), mine.reset_index(drop=True))
    assert len(F.build_series(vq.derivative_edges_of(mini_store, ids)).ids) == 2


def test_growth_curves_on_one_chart(comparison):
    cv = comparison.curves
    assert set(cv["model"]) == {PHI2, GPT2, SDXL}
    for mid, g in cv.groupby("model"):
        kinds = set(g["kind"])
        assert "observed" in kinds and "forecast" in kinds, (mid, kinds)
        obs = g[g["kind"] == "observed"]["value"]
        assert obs.is_monotonic_increasing  # cumulative derivatives
        fc = g[g["kind"] == "forecast"]
        assert fc["value"].iat[0] == obs.iat[-1]  # the forecast starts at the last count
        assert fc["t"].max() == g[g["kind"] == "observed"]["t"].max() + 12  # 12 months ahead


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
