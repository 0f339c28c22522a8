"""The HuggingBench-style harness on the mini graph."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analytics.evaluate import evaluate, format_report, holdout_links, ranking_metrics, split_holdout
from tests.test_retrieval import retrieval_root


def test_ranking_metrics_by_hand():
    m = ranking_metrics(np.array([7, 3, 9, 1, 5]), {3, 5, 42}, ks=(1, 2, 5))
    assert m["Recall@1"] == 0 and m["Recall@2"] == pytest.approx(1 / 3)
    assert m["Recall@5"] == pytest.approx(2 / 3)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["NDCG@5"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(6)) / ideal)


def test_split_holdout_is_seeded():
    links = pd.DataFrame({"model": [f"m{i}" for i in range(100)], "dataset": "d"})
    ok = pd.Series([True] * 90 + [False] * 10)
    a, train_a = split_holdout(links, ok, 20, seed=3)
    b, _ = split_holdout(links, ok, 20, seed=3)
    c, _ = split_holdout(links, ok, 20, seed=4)
    assert a.equals(b) and not a.equals(c)
    assert len(a) == 20 and len(train_a) == 80 and a.index.max() < 90
    assert not set(a.index) & set(train_a.index)


@pytest.fixture(scope="module")
def result(mini_graph_root, tmp_path_factory):
    from graph.store import open_store

    root = retrieval_root(mini_graph_root, tmp_path_factory)
    store = open_store(read_only=True, root=root)
    try:
        return evaluate(store, root=root, sample=40, seed=0, n_train_tracer=150)
    finally:
        store.close()


def test_metrics_are_sane(result):
    ds = result["dataset recommendation"]
    for name in ("hybrid (ours)", "popularity", "random", "task popularity"):
        for k in (5, 10, 20, 40):
            assert 0.0 <= ds[name][f"Recall@{k}"] <= 1.0
            assert 0.0 <= ds[name][f"NDCG@{k}"] <= 1.0
        recalls = [ds[name][f"Recall@{k}"] for k in (5, 10, 20, 40)]
        assert recalls == sorted(recalls)  # recall grows with k
    assert ds["popularity"]["models"] == ds["hybrid (ours)"]["models"] > 0
    assert ds["hybrid (ours)"]["Recall@10"] >= ds["random"]["Recall@10"]
    tr = result["model tracing"]
    for name in ("hybrid (ours)", "popularity", "random"):
        assert 0.0 <= tr[name]["Hits@1"] <= tr[name]["Hits@10"] <= 1.0
        assert 0.0 <= tr[name]["MRR"] <= 1.0
    assert tr["hybrid (ours)"]["MRR"] > tr["random"]["MRR"]
    setup = result["setup"]
    assert setup["held_out_dataset_links"] == 40 and setup["held_out_lineage_links"] == 40
    assert setup["re_embedded_texts"] > 0  # texts rebuilt without the held-out links


def test_same_seed_same_split(result, mini_graph_root, tmp_path_factory):
    from graph import retrieval_queries as rq
    from graph.store import open_store

    root = retrieval_root(mini_graph_root, tmp_path_factory)
    store = open_store(read_only=True, root=root)
    try:
        models = rq.model_frame(store)
        ds, lin = rq.model_dataset_links(store), rq.lineage_links(store)
    finally:
        store.close()
    a = holdout_links(models, ds, lin, 40, seed=0)
    b = holdout_links(models, ds.iloc[::-1], lin.sample(frac=1, random_state=1), 40, seed=0)
    for x, y in zip(a, b):  # the engine's row order does not change the draw
        assert x.reset_index(drop=True).equals(y.reset_index(drop=True))
    assert result["dataset recommendation"]["hybrid (ours)"]["models"] == a[0]["model"].nunique()
    assert result["setup"]["held_out_lineage_links"] == len(a[2])


def test_report_has_baselines(result):
    text = format_report(result)
    for needle in ("hybrid (ours)", "popularity", "random", "HuggingBench", "Recall@40", "MRR"):
        assert needle in text
