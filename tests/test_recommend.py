"""Similar models, datasets to try, where to start, and base-model tracing on the mini graph."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics import model_rows
from analytics.embeddings import model_texts
from analytics.recommend import TRACE_FEATURES, BaseModelTracer, ModelRecommender
from analytics.retrieval import build_search
from graph import retrieval_queries as rq
from tests.test_retrieval import retrieval_root


@pytest.fixture(scope="module")
def fitted(mini_graph_root, tmp_path_factory):
    from graph.store import open_store

    root = retrieval_root(mini_graph_root, tmp_path_factory)
    search = build_search(root=root)
    store = open_store(read_only=True, root=root)
    try:
        ds, lin = rq.model_dataset_links(store), rq.lineage_links(store)
    finally:
        store.close()
    frame = search.models_frame_
    rec = ModelRecommender().fit(frame, search.vectors_, ds, lin, index=search)
    return search, rec, ds, lin


def test_similar_models_exclude_itself_and_find_family(fitted):
    _, rec, _, _ = fitted
    res = rec.similar_models("openai-community/gpt2", k=10)
    assert len(res) == 10
    assert "openai-community/gpt2" not in res["id"].tolist()
    assert (res["lineage"] > 0).any()  # gpt2 fine-tunes are its children
    assert res["reason"].str.contains("text").all()
    with pytest.raises(KeyError):
        rec.similar_models("nobody/nothing")


def test_datasets_for_model_exclude_known(fitted):
    _, rec, ds, _ = fitted
    model = "distilbert/distilbert-base-uncased"
    known = set(ds.loc[ds["model"] == model, "dataset"])
    res = rec.datasets_for_model(model, k=5)
    assert len(res) == 5 and not (set(res["dataset"]) & known)
    assert res["score"].is_monotonic_decreasing
    assert (res["used_by"] > 0).any() and res["reason"].str.len().gt(0).all()


def test_datasets_for_task(fitted):
    _, rec, _, _ = fitted
    res = rec.datasets_for_task("text-classification", k=5)
    assert len(res) and res.iloc[0]["dataset"] == "emotion"
    assert rec.datasets_for_task("no-such-task").empty


def test_where_to_start(fitted):
    _, rec, _, _ = fitted
    res = rec.where_to_start("text-generation", k=10)
    assert len(res) and res["score"].is_monotonic_decreasing
    assert {"openai-community/gpt2", "meta-llama/Meta-Llama-3-8B-Instruct"} & set(res["id"])
    assert not res["id"].str.contains("GGUF").any()  # quantisations are not starting points
    assert res["reason"].str.contains("derivatives").all()


def test_tracer_ranks_the_true_parent_high(fitted):
    search, _, _, lin = fitted
    child = "realyc/Meta-Llama-3-8B-Q4_K_M-GGUF"
    train = lin[lin["child"] != child]
    frame = model_rows.attach_links(search.models_frame_.drop(columns=["datasets", "bases",
                                                               "base_relations", "family_size"]),
                            _no_links(), train)
    tracer = BaseModelTracer(n_train=200).fit(frame, search.vectors_, train, index=search)
    row = frame[frame["id"] == child]
    vec = search.encoder.encode(model_texts(row))[0]  # its text no longer names the base
    res = tracer.rank(child, k=10, vector=vec)
    assert child not in res["id"].tolist()
    assert res.iloc[:3]["id"].tolist().count("meta-llama/Meta-Llama-3-8B") == 1
    assert len(tracer.weights_) == len(TRACE_FEATURES) and np.isfinite(tracer.weights_).all()


def _no_links():
    return pd.DataFrame(columns=["model", "dataset"])


def test_recommender_validates(fitted):
    search, _, ds, _ = fitted
    with pytest.raises(TypeError):
        ModelRecommender().fit(search.models_frame_, search.vectors_, ds, ds, index=search)
    with pytest.raises(ValueError):
        ModelRecommender(n_neighbors=0).fit(search.models_frame_, search.vectors_, ds,
                                            pd.DataFrame(columns=["child", "parent"]),
                                            index=search)
