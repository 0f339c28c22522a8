"""Hybrid model search on the mini graph, with the real MiniLM encoder."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from analytics import model_rows
from analytics.embeddings import embed_models, model_texts
from analytics.retrieval import HybridSearch, SearchFilters, build_search, lexical_tokens
from graph import retrieval_queries as rq


def retrieval_root(mini_graph_root, tmp_path_factory):
    """A copy of the mini graph shared by the retrieval test modules (its vector cache too)."""
    root = tmp_path_factory.getbasetemp() / "retrieval_graph"
    if not root.exists():
        shutil.copytree(mini_graph_root, root)
    return root


@pytest.fixture(scope="module")
def built(mini_graph_root, tmp_path_factory):
    root = retrieval_root(mini_graph_root, tmp_path_factory)
    search = build_search(root=root)
    return root, search, search.build_info_


@pytest.fixture(scope="module")
def search(built):
    return built[1]


def test_lexical_tokens_keep_the_id_whole():
    assert "gpt2" in lexical_tokens("openai-community/gpt2")


@pytest.mark.parametrize("query, expected", [
    ("stable diffusion xl text to image", "stabilityai/stable-diffusion-xl-base-1.0"),
    ("gpt2", "openai-community/gpt2"),
    ("distilbert base uncased", "distilbert/distilbert-base-uncased"),
])
def test_obvious_query_finds_obvious_model(search, query, expected):
    res = search.search(query, k=3)
    assert expected in res["id"].tolist()


def test_results_carry_scores_and_reasons(search):
    res = search.search("gpt2 text generation", k=5)
    assert len(res) == 5
    assert (res["score"].diff().dropna() <= 1e-6).all()  # best first
    for col in ("semantic", "lexical", "popularity", "reason", "matched_terms"):
        assert col in res
    top = res[res["id"] == "openai-community/gpt2"].iloc[0]
    assert "gpt2" in top["matched_terms"]
    assert "semantic" in top["reason"] and "adoption" in top["reason"]
    assert top["popularity"] > 0.5


def test_filters(search):
    res = search.search("language model", k=10, filters=SearchFilters(task="text-classification"))
    assert len(res) and (res["pipelineTag"] == "text-classification").all()
    res = search.search("llama", k=10, filters=SearchFilters(quantized=True))
    assert len(res) and res["quantized"].all()
    res = search.search("llama", k=10, filters=SearchFilters(quantized=False))
    assert not res["quantized"].any()
    res = search.search("model", k=10, filters=SearchFilters(relation="quantized"))
    assert len(res) and res["relation"].str.contains("quantized").all()
    res = search.search("model", k=10, filters=SearchFilters(relation="base"))
    assert len(res) and (res["relation"] == "base").all()
    res = search.search("model", k=10, filters=SearchFilters(created_after="2024-05-01"))
    assert len(res) and (pd.to_datetime(res["createdAt"]) >= "2024-05-01").all()
    res = search.search("model", k=10, filters=SearchFilters(library="diffusers", license="openrail++"))
    assert len(res) and (res["libraryName"] == "diffusers").all() and (res["license"] == "openrail++").all()
    assert search.search("model", k=5, filters=SearchFilters(task="no-such-task")).empty
    with pytest.raises(ValueError):
        search.search("model", filters=SearchFilters(relation="cousin"))
    opts = search.options()
    assert "text-generation" in opts["task"] and "base" in opts["relation"]


def test_vectors_persisted_and_reused(built):
    root, search, first = built
    assert first["embedded"] + first["reused"] == search.n_models_
    again = build_search(root=root)
    info = again.build_info_
    assert info["embedded"] == 0 and info["reused"] == search.n_models_
    assert np.array_equal(np.asarray(again.vectors_), np.asarray(search.vectors_))


def test_changed_model_is_the_only_one_re_embedded(built, tmp_path):
    root, search, _ = built
    frame = search.models_frame_.copy()
    enc = search.encoder
    cache_root = tmp_path / "cache"
    shutil.copytree(root / "retrieval", cache_root / "retrieval")
    i = int(np.flatnonzero(frame["id"] == "openai-community/gpt2")[0])
    frame.at[i, "tags"] = list(frame.at[i, "tags"]) + ["shakespeare"]
    texts = model_texts(frame)
    vecs, info = embed_models(frame["id"], texts, enc, root=cache_root)
    assert info["embedded"] == 1 and info["reused"] == len(frame) - 1
    old = np.asarray(search.vectors_)
    changed = np.flatnonzero(np.any(np.asarray(vecs) != old, axis=1))
    assert changed.tolist() == [i]
    # and the new vector was persisted: the next build embeds nothing
    _, info2 = embed_models(frame["id"], texts, enc, root=cache_root)
    assert info2["embedded"] == 0


def test_two_stage_dense_matches_exact_reference(search):
    """The coarse-then-exact scan against the plain exact scan (the slow reference)."""
    small = HybridSearch(encoder=search.encoder, coarse_dim=64, n_candidates=40).fit(
        search.models_frame_, search.vectors_)
    full = np.asarray(search.vectors_, dtype=np.float32)
    for q in ("sentiment analysis", "llama 3 gguf", "image generation lora"):
        qv = small.encode_query(q)
        rows, cos = small.dense_candidates(qv, 10)
        ref = np.argsort(-(full @ qv), kind="stable")[:10]
        assert len(set(rows) & set(ref)) >= 9
        assert np.allclose(cos, full[rows] @ qv, atol=1e-5)


def test_lexical_scores_match_naive_reference(search):
    from sklearn.feature_extraction.text import TfidfVectorizer

    rows, scores, terms = search.lexical_scores("llama gguf")
    assert set(terms) == {"llama", "gguf"}
    X = search.terms_.tocsr()
    # the query vector as scikit-learn would make it from the same vocabulary and idf
    vec = TfidfVectorizer(analyzer=lambda d: d, sublinear_tf=True,
                          vocabulary=search.vocab_.to_pylist())
    vec.fit([search.vocab_.to_pylist()])
    vec.idf_ = search.idf_.astype(np.float64)
    q = vec.transform([lexical_tokens("llama gguf")]).toarray().ravel()
    naive = np.array([X[i].toarray().ravel() @ q for i in range(X.shape[0])])
    assert set(rows) == set(np.flatnonzero(naive > 0))
    assert np.allclose(scores, naive[rows], atol=1e-5)


def test_fit_validates(search):
    with pytest.raises(ValueError):
        HybridSearch().fit(search.models_frame_, np.zeros((3, 384), np.float32))
    with pytest.raises(TypeError):
        HybridSearch().fit([], np.zeros((0, 384)))
    with pytest.raises(ValueError):
        search.search("   ")


def test_changed_models_since(mini_store):
    import datetime

    ids = rq.changed_models_since(mini_store, datetime.datetime(2024, 6, 1))
    frame = rq.model_frame(mini_store)
    recent = set(frame.loc[frame["createdAt"] >= "2024-06-01", "id"])
    assert recent <= set(ids)


def test_search_page_renders_results_and_panels(built, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from analytics.pipeline import SEARCH, build_now

    root, _, _ = built
    monkeypatch.setenv("HUBATLAS_DB", str(root))
    at = AppTest.from_file("../app_pages/search.py", default_timeout=120)
    at.run()  # the job has not built the index yet: the page says so
    assert not at.exception and "not computed yet" in at.info[0].value
    # the scheduled job's step (vectors from the cache the fixture filled)
    assert [s.ok for s in build_now([SEARCH])] == [True]
    at = AppTest.from_file("../app_pages/search.py", default_timeout=120)
    at.run()
    assert not at.exception
    at.text_input[0].input("gpt2 text generation").run()
    assert not at.exception
    results = at.dataframe[0].value
    # ids link to the Hub; task, downloads and licence come before the reason
    assert "https://huggingface.co/openai-community/gpt2" in results["id"].tolist()
    cols = list(results.columns)
    assert cols.index("pipelineTag") < cols.index("downloads") < cols.index("license") \
        < cols.index("reason")
    assert results["reason"].str.contains("semantic").all()
    assert at.query_params["q"] in ("gpt2 text generation", ["gpt2 text generation"])  # URL
    assert len(at.dataframe) >= 3  # results, similar models, datasets to try
    assert any("lineage?model=" in m.value for m in at.markdown), [m.value for m in at.markdown]
    datasets = at.dataframe[2].value
    assert not datasets["reason"].str.contains("task nan").any()
    at.text_input[0].input("qwzx vbnm plok").run()  # nonsense: the page says it is unsure
    assert any("No model clearly matches" in w.value for w in at.warning), (at.exception, [w.value for w in at.warning], [e.value for e in at.text_input])


def test_model_text_does_not_depend_on_link_order(search):
    frame = search.models_frame_[["id", "author", "pipelineTag", "libraryName", "tags",
                                  "license", "cardText", "downloads", "likes", "createdAt"]]
    ds = pd.DataFrame({"model": ["openai-community/gpt2"] * 3, "dataset": ["c", "a", "b"]})
    lin = pd.DataFrame({"child": ["openai-community/gpt2"] * 2, "parent": ["z/z", "y/y"],
                        "relation": ["merge", "merge"]})
    one = model_rows.attach_links(frame, ds, lin)
    two = model_rows.attach_links(frame, ds.iloc[::-1], lin.iloc[::-1])
    assert model_texts(one) == model_texts(two)
    row = one[one["id"] == "openai-community/gpt2"].iloc[0]
    assert row["datasets"] == ["a", "b", "c"] and row["bases"] == ["y/y", "z/z"]
