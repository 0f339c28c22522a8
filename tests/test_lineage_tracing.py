"""Base-model tracing in the hard, real case: no declared base, no mention of it, every model of
the graph a candidate (analytics.recommend.BaseModelTracer, analytics.evaluate)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics import model_rows
from analytics.recommend import TRACE_FEATURES, BaseModelTracer, scrub_base_mentions, scrubbed_texts
from analytics.retrieval import build_search
from graph import retrieval_queries as rq
from tests.test_retrieval import retrieval_root

CHILD = "realyc/Meta-Llama-3-8B-Q4_K_M-GGUF"
PARENT = "meta-llama/Meta-Llama-3-8B"


def test_scrub_base_mentions():
    rows = pd.DataFrame({
        "id": ["u/x"], "bases": [["org/Base-7B"]], "base_relations": [["finetune"]],
        "tags": [["base_model:org/Base-7B", "base_model:finetune:org/Base-7B", "org/Base-7B",
                  "llama", "trl"]],
        "cardText": ["This model is a fine-tuned version of [org/Base-7B]"
                     "(https://huggingface.co/org/Base-7B). Base-7B is great; so is llama."]})
    out = scrub_base_mentions(rows, [["org/Base-7B"]])
    assert out.loc[0, "bases"] == [] and out.loc[0, "base_relations"] == []
    assert out.loc[0, "tags"] == ["llama", "trl"]
    card = out.loc[0, "cardText"]
    assert "Base-7B" not in card and "huggingface.co" not in card and "llama" in card
    text = scrubbed_texts(rows, [["org/Base-7B"]])[0]
    assert "Base-7B" not in text and "base:" not in text
    assert rows.loc[0, "bases"] == ["org/Base-7B"]  # the input is left alone


@pytest.fixture(scope="module")
def fitted(mini_graph_root, tmp_path_factory):
    from graph.store import open_store

    root = retrieval_root(mini_graph_root, tmp_path_factory)
    search = build_search(root=root)
    store = open_store(read_only=True, root=root)
    try:
        lin = rq.lineage_links(store)
    finally:
        store.close()
    return search, lin


def test_tracer_over_every_model_finds_a_scrubbed_childs_base(fitted):
    search, lin = fitted
    train = lin[lin["child"] != CHILD]
    frame = model_rows.attach_links(search.models_frame_.drop(columns=["datasets", "bases",
                                                               "base_relations", "family_size"]),
                            pd.DataFrame(columns=["model", "dataset"]), train)
    frame["parameters"] = np.where(frame["id"].isin([CHILD, PARENT]), 8.0e9, np.nan)
    tracer = BaseModelTracer(pool="all", n_train=200).fit(frame, search.vectors_, train,
                                                         index=search,
                                                         train_texts=scrubbed_texts)
    assert len(tracer.pool_) == len(frame)  # every model is a candidate
    row = frame[frame["id"] == CHILD]
    vec = search.encoder.encode(scrubbed_texts(row, [[PARENT]]))[0]
    res = tracer.rank(CHILD, k=10, vector=vec)
    assert CHILD not in res["id"].tolist() and PARENT in res["id"].tolist()[:3]
    assert list(res.columns[2:2 + len(TRACE_FEATURES)]) == list(TRACE_FEATURES)
    assert res.set_index("id").loc[PARENT, "parameters"] == pytest.approx(1.0)
    assert len(tracer.weights_) == len(TRACE_FEATURES) and np.isfinite(tracer.weights_).all()


def test_tracer_rejects_unknown_pool(fitted):
    search, lin = fitted
    with pytest.raises(ValueError, match="pool"):
        BaseModelTracer(pool="some").fit(search.models_frame_, search.vectors_, lin,
                                         index=search)


def test_both_protocols_are_reported(mini_graph_root, tmp_path_factory):
    from analytics.evaluate import evaluate, format_report
    from graph.store import open_store

    root = retrieval_root(mini_graph_root, tmp_path_factory)
    store = open_store(read_only=True, root=root)
    try:
        res = evaluate(store, root=root, sample=30, seed=1, n_train_tracer=100)
    finally:
        store.close()
    easy, hard = res["model tracing"], res["model tracing (hard)"]
    for table in (easy, hard):
        for name, m in table.items():
            if not name.startswith("_"):
                assert 0.0 <= m["Hits@1"] <= m["Hits@10"] <= 1.0 and 0.0 <= m["MRR"] <= 1.0
    ours, rnd = hard["hybrid (ours), every model"], hard["random, every model"]
    assert ours["links"] == 30 and ours["MRR"] > rnd["MRR"]
    setup = res["setup"]["tracing_hard"]
    assert setup["ranked_against"] == res["setup"]["models"] and setup["children"] > 0
    assert setup["links_removed"] >= 0
    text = format_report(res)
    assert "Model tracing, hard" in text and "every model" in text
    # the easy protocol sees the child's other links and a pool of known bases: not harder
    assert easy["hybrid (ours)"]["MRR"] >= ours["MRR"] - 0.05
