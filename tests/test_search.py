"""Query understanding, the saved index, the relevance set and the search CLI (mini graph,
real MiniLM encoder)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from analytics.retrieval import HybridSearch, SearchFilters, build_search, open_search
from analytics.search import main as search_main
from analytics.search import name_key, parse_query, task_phrases
from analytics.search_relevance import (
    METHOD_LABELS,
    RankedResult,
    RelevanceQuery,
    Rule,
    acceptable_ids,
    canonical_judgements,
    evaluate_search,
    format_table,
    held_out,
    relevance_set,
    score_rankers,
    summarise,
)
from tests.test_retrieval import retrieval_root


@pytest.fixture(scope="module")
def search(mini_graph_root, tmp_path_factory):
    return build_search(root=retrieval_root(mini_graph_root, tmp_path_factory))


@pytest.mark.parametrize("query, tasks, tokens", [
    ("text to image", ("text-to-image",), ()),
    ("speech recognition", ("automatic-speech-recognition",), ()),
    ("NER", ("token-classification",), ()),
    ("german named entity recognition", ("token-classification",), ("german",)),
    ("sentiment analysis for tweets", ("text-classification",), ("tweets",)),
    ("llama 3 8b instruct gguf", (), ("llama", "3", "8b", "instruct", "gguf")),
    ("whisper small", (), ("whisper", "small")),
])
def test_parse_query_maps_task_words_to_pipeline_tags(query, tasks, tokens):
    p = parse_query(query)
    assert p.tasks == tasks and p.name_tokens == tokens


def test_parse_query_knows_every_pipeline_tag_spelt_as_words():
    phrases = task_phrases(["image-to-text", "depth-estimation"])
    assert parse_query("image to text please", phrases).tasks == ("image-to-text",)
    assert name_key("distilbert/distilbert-base-uncased".split("/")[1]) == \
        name_key("distilbert base uncased") == "distilbertbaseuncased"


@pytest.mark.parametrize("query, expected", [
    ("gpt2", "openai-community/gpt2"),
    ("distilbert-base-uncased", "distilbert/distilbert-base-uncased"),
    ("stable diffusion xl base", "stabilityai/stable-diffusion-xl-base-1.0"),
])
def test_a_query_that_names_a_model_puts_it_first(search, query, expected):
    res = search.search(query, k=5)
    assert res["id"].iloc[0] == expected
    assert res["confidence"].iloc[0] == "high"


def test_task_words_select_the_task_and_adoption_orders_it(search):
    res = search.search("text to image", k=5)
    assert (res["pipelineTag"] == "text-to-image").all()
    assert (res["task"] == 1).all() and "task text-to-image" in res["reason"].iloc[0]
    # among equally relevant models of the task, the adopted ones come first
    assert res["downloads"].iloc[0] >= res["downloads"].median()


def test_a_build_format_is_a_requirement_and_adoption_orders_the_builds(search):
    assert parse_query("llama 3 8b gguf").formats == ("gguf",)
    assert parse_query("llama 3 8b gguf").is_intent and parse_query("sentiment").is_intent
    assert not parse_query("whisper small").is_intent
    res = search.search("meta llama 3 8b gguf", k=5)
    # every result is a GGUF build (the base model itself is not what was asked for)
    assert res["id"].str.contains("gguf", case=False).all(), res["id"].tolist()
    assert "format gguf" in res["reason"].iloc[0]
    plain = search.search("meta llama 3 8b", k=5)
    assert not plain["id"].iloc[0].lower().endswith("gguf")


def test_an_intent_query_weighs_name_words_by_adoption(search):
    """Words of an intent query found in an unused repo's name do not outrank used models:
    "anime" in a 37-download repo's name does not put it above SDXL for this task query."""
    res = search.search("text to image anime", k=3)
    assert res["id"].iloc[0] == "stabilityai/stable-diffusion-xl-base-1.0"
    literal = search.set_params(intent_name_adoption=0.0).search("text to image anime", k=3)
    search.set_params(intent_name_adoption=1.0)
    assert literal["downloads"].iloc[0] < 100  # what the name-only match did


def test_nonsense_is_low_confidence(search):
    res = search.search("qwzx vbnm plok", k=5)
    assert (res["confidence"] == "low").all()
    assert "low confidence" in res["reason"].iloc[0]


def test_rank_methods_and_validation(search):
    for method in ("hybrid", "v1", "dense", "lexical", "hub"):
        r = search.rank("gpt2", 5, method=method)
        assert len(r.rows) <= 5
    assert search.ids_[search.rank("gpt2", 3, method="hub").rows[0]] == "openai-community/gpt2"
    with pytest.raises(ValueError):
        search.rank("gpt2", 5, method="magic")


def test_save_load_round_trip(search, tmp_path):
    folder = search.save(tmp_path / "results" / "search")
    assert (folder / "manifest.json").exists() and (folder / "models.parquet").exists()
    man = json.loads((folder / "manifest.json").read_text())
    assert man["n_models"] == search.n_models_ and man["encoder"]["key"] == search.encoder.key
    loaded = HybridSearch.load(folder)
    assert isinstance(loaded.vectors_, np.memmap) and isinstance(loaded.coarse_, np.memmap)
    for q, f in (("llama 3 8b instruct gguf", None), ("sentiment analysis for tweets", None),
                 ("model", SearchFilters(library="diffusers")),
                 ("chat", SearchFilters(quantized=True, created_after="2024-01-01"))):
        a, b = search.search(q, k=8, filters=f), loaded.search(q, k=8, filters=f)
        assert a["id"].tolist() == b["id"].tolist()
        assert np.allclose(a["score"], b["score"], atol=1e-5)
    assert loaded.options() == search.options()
    frame = loaded.models_frame_  # read lazily from models.parquet
    assert frame["id"].tolist() == search.models_frame_["id"].tolist()
    assert isinstance(frame["tags"].iloc[0], list)
    # saving again over the folder replaces it whole
    loaded.save(folder)
    assert HybridSearch.load(folder).n_models_ == search.n_models_


def test_load_rejects_missing_or_other_format(tmp_path, search):
    with pytest.raises(FileNotFoundError):
        HybridSearch.load(tmp_path / "nothing")
    folder = search.save(tmp_path / "s")
    man = json.loads((folder / "manifest.json").read_text())
    man["format"] = 999
    (folder / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match="rebuild"):
        HybridSearch.load(folder)


def test_open_search_uses_the_generation_folder(mini_graph_root, tmp_path):
    from analytics.retrieval import search_folder

    root = tmp_path / "graph"
    shutil.copytree(mini_graph_root, root)
    assert not (search_folder(root) / "manifest.json").exists()
    first = open_search(root=root)  # builds and saves
    folder = search_folder(root)
    assert (folder / "manifest.json").exists()
    assert folder.parent.parent.name.startswith("gen-")
    again = open_search(root=root)  # loads
    assert getattr(again, "_folder", None) == str(folder)
    assert again.search("gpt2", k=3)["id"].tolist() == first.search("gpt2", k=3)["id"].tolist()


def test_relevance_rules():
    models = pd.DataFrame({
        "id": ["a/twitter-sentiment", "b/tweet-sentiment", "c/news-sentiment", "d/x", "e/x"],
        "pipelineTag": ["text-classification"] * 3 + ["text-to-image"] * 2,
        "tags": [["en"], ["en"], ["gguf"], [], []], "bases": [[], [], [], ["z/z"], []],
        "downloads": [5000, 10, 9000, 3, 2]})
    rule = Rule(task=("text-classification",), id_all=(r"twitter|tweet",), min_downloads=100)
    assert acceptable_ids(rule, models) == {"a/twitter-sentiment"}
    assert acceptable_ids(Rule(ids=("D/X",)), models) == {"d/x"}
    assert acceptable_ids(Rule(tags_any=("gguf",)), models) == {"c/news-sentiment"}
    assert acceptable_ids(Rule(bases_any=("z/z",)), models) == {"d/x"}
    assert acceptable_ids(Rule(task=("text-classification",), top_n=1), models) == \
        {"c/news-sentiment"}
    canon = canonical_judgements(models.assign(id=["o/gpt2", "p/GPT-2", "q/bert", "r/x", "s/y"]),
                                 n=3)
    # "gpt2" and "GPT-2" share a name key: only the more downloaded holds it
    assert [(j.query, j.rule.ids) for j in canon] == [("bert", ("q/bert",)),
                                                      ("gpt2", ("o/gpt2",)), ("x", ("r/x",))]
    assert held_out("gpt2") == held_out("GPT2")


def test_scores_by_hand():
    qs = [RelevanceQuery("q1", "known-item", "", frozenset({"m1"}), False),
          RelevanceQuery("q2", "known-item", "", frozenset({"m9"}), False),
          RelevanceQuery("zz", "nonsense", "", frozenset(), True)]
    ranked = {"q1": RankedResult(["m0", "m1"]), "q2": RankedResult(["m1", "m2"]),
              "zz": RankedResult(["m3"], low_confidence=True)}
    per = score_rankers({"r": ranked.__getitem__}, qs)
    s = summarise(per)
    row = s[(s["kind"] == "known-item") & ~s["held_out"]].iloc[0]
    assert row["success@1"] == 0 and row["success@5"] == 0.5 and row["MRR@10"] == 0.25
    assert s[s["kind"] == "nonsense"].iloc[0]["low_confidence"] == 1.0
    assert "held-out part" in format_table(s, ["r"])


def test_relevance_set_on_the_mini_graph(search):
    queries = relevance_set(search.models_frame_)
    kinds = {q.kind for q in queries}
    assert {"known-item", "task", "nonsense"} <= kinds
    assert any(q.held_out for q in queries) and any(not q.held_out for q in queries)
    summary, per = evaluate_search(search, methods=("hybrid", "v1"))
    real = summary[summary["kind"] == "all (real)"]
    new = real[real["method"] == METHOD_LABELS["hybrid"]]["MRR@10"].mean()
    old = real[real["method"] == METHOD_LABELS["v1"]]["MRR@10"].mean()
    assert new >= old
    nonsense = summary[(summary["kind"] == "nonsense")
                       & (summary["method"] == METHOD_LABELS["hybrid"])]
    assert nonsense["low_confidence"].mean() >= 0.8


def test_search_cli(mini_graph_root, tmp_path, monkeypatch, capsys):
    root = tmp_path / "graph"
    shutil.copytree(mini_graph_root, root)
    monkeypatch.setenv("HUBATLAS_DB", str(root))
    assert search_main(["gpt2", "-k", "3", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["id"] == "openai-community/gpt2" and len(rows) == 3
    assert {"pipelineTag", "downloads", "license", "confidence", "reason"} <= set(rows[0])
    assert search_main(["model", "--task", "text-to-image", "-k", "4"]) == 0
    out = capsys.readouterr().out
    assert "text-to-image" in out and "text-generation" not in out


def test_recommender_state_saved_and_loaded(search, mini_graph_root, tmp_path_factory, tmp_path):
    from analytics.recommend import ModelRecommender, build_recommender

    root = retrieval_root(mini_graph_root, tmp_path_factory)
    rec = build_recommender(search, root=root, save_to=tmp_path / "recommender")
    loaded = ModelRecommender.load(tmp_path / "recommender", HybridSearch.load(
        search.save(tmp_path / "search")))
    a = rec.similar_models("openai-community/gpt2", k=5)
    b = loaded.similar_models("openai-community/gpt2", k=5)
    assert a["id"].tolist() == b["id"].tolist()
    assert rec.datasets_for_model("openai-community/gpt2", k=5)["dataset"].tolist() == \
        loaded.datasets_for_model("openai-community/gpt2", k=5)["dataset"].tolist()
    task = search.models_frame_["pipelineTag"].dropna().iloc[0]
    assert rec.where_to_start(task, 5)["id"].tolist() == \
        loaded.where_to_start(task, 5)["id"].tolist()
    other = HybridSearch.load(search.save(tmp_path / "s2"))
    other.ids_ = other.ids_[:3]
    with pytest.raises(ValueError):
        ModelRecommender.load(tmp_path / "recommender", other)
