"""graph/views_queries.py on the mini graph: the reads behind the views, against
graph.queries or plain Cypher."""
from __future__ import annotations

import pandas as pd
import pytest

from graph import queries as q
from graph import views_queries as vq


@pytest.fixture(scope="module")
def mini_store(mini_graph_root):
    from graph.store import open_store

    store = open_store(read_only=True, root=mini_graph_root)
    yield store
    store.close()


def test_lineage_edges_with_models(mini_store):
    e = vq.lineage_edges_with_models(mini_store)
    assert len(e) == sum(v for k, v in q.count_rels(mini_store).items() if k.endswith(("_OF",
                                                                                      "_FROM")))
    row = e[(e["child"] == "BramVanroy/fietje-2") & (e["parent"] == "microsoft/phi-2")].iloc[0]
    assert (row["relation"], row["parent_licence"], row["parent_author"]) == \
        ("finetune", "mit", "microsoft")


def test_author_models_include_stubs_by_namespace(mini_store):
    """Stub parents carry no author: they belong to the namespace of their id."""
    models = vq.author_models(mini_store, "SanjiWatsuki")
    assert {"SanjiWatsuki/Kunoichi-7B", "SanjiWatsuki/Kunoichi-DPO-v2-7B"} <= set(models["id"])
    assert models["stub"].all()
    assert vq.author_models(mini_store, "Sanji").empty  # a prefix of a name is not the name
    phi = vq.author_models(mini_store, "microsoft").set_index("id")
    assert phi.at["microsoft/phi-2", "children"] == sum(
        q.descendant_counts(mini_store, "microsoft/phi-2").values())


def test_author_family_is_every_descendant(mini_store):
    fam = vq.author_family(mini_store, "microsoft")
    desc = q.descendants(mini_store, "microsoft/phi-2", 30)
    assert sorted(fam["id"]) == sorted(desc["id"])
    assert dict(zip(fam["id"], fam["depth"])) == dict(zip(desc["id"], desc["depth"]))


def test_derivative_edges_of_matches_the_whole_graph_query(mini_store):
    ids = ["microsoft/phi-2", "openai-community/gpt2"]
    mine = vq.derivative_edges_of(mini_store, ids)
    every = q.derivative_edges(mini_store)
    every = every[every["parent"].isin(ids)]
    key = ["parent", "child"]
    pd.testing.assert_frame_equal(
        mine.sort_values(key).reset_index(drop=True)[every.columns],
        every.sort_values(key).reset_index(drop=True), check_dtype=False)


def test_models_by_id_and_edges_from(mini_store):
    m = vq.models_by_id(mini_store, ["microsoft/phi-2", "no/such"])
    assert m["id"].tolist() == ["microsoft/phi-2"] and "licenseVerdict" in m
    e = vq.lineage_edges_from(mini_store, ["BramVanroy/fietje-2"])
    assert e[["parent", "relation"]].values.tolist() == [["microsoft/phi-2", "finetune"]]
    assert {"inferred", "source"} <= set(e.columns)


def test_observations_and_runs(mini_store):
    runs = vq.observation_runs(mini_store)
    assert len(runs) == 1 and runs["models"].iat[0] == q.count_nodes(mini_store)["Model"] - \
        q.count_nodes(mini_store)["Model (stub)"]
    obs = vq.model_observations(mini_store, ["microsoft/phi-2"])
    assert obs["downloads"].tolist() == [q.get_model(mini_store, "microsoft/phi-2").downloads]
    assert vq.repeated_observations(mini_store).empty


def test_verdict_rows_must_carry_every_licence_property(mini_store):
    import pyarrow as pa

    with pytest.raises(ValueError, match="familyRoot"):
        vq.write_licence_verdicts(mini_store, pa.table({"id": ["a"], "licenseVerdict": ["same"],
                                                        "licenseChainVerdict": ["same"]}))
