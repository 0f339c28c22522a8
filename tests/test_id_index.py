"""analytics/id_index.py: the type-ahead index, against a plain-Python reference."""
from __future__ import annotations

import pandas as pd
import pytest

from analytics.id_index import ModelIdIndex
from graph import queries as q
from tests.mini_graph import PHI2, edges, models, store  # noqa: F401 - fixtures, found by name


# -- type-ahead index ------------------------------------------------------------------
def _reference_search(ids, downloads, text, limit):
    t = text.strip().lower()

    def rank(i):
        lo, name = i.lower(), i.lower().split("/", 1)[-1]
        return (0 if lo == t else 1 if name == t else 2 if lo.startswith(t) else
                3 if name.startswith(t) else 4)

    hits = [i for i in ids if t in i.lower()]
    return sorted(hits, key=lambda i: (rank(i), -downloads[i], i.lower()))[:limit]


@pytest.mark.parametrize("text", ["llama", "LLAMA", "phi-2", "microsoft/phi-2", "a", "/", "gpt2",
                                  "zzz-nothing", "", "  bert  "])
def test_id_index_search_matches_reference(store, models, text):
    index = ModelIdIndex.from_frame(q.model_ids_downloads(store))
    dl = dict(zip(models["id"], pd.to_numeric(models["downloads"]).fillna(0)))
    got = index.search(text, limit=20)
    want = _reference_search(models["id"].tolist(), dl, text, 20) if text.strip() else []
    t = text.strip().lower()

    def key(i):  # (rank, -downloads): ties may come in any order
        lo = i.lower()
        name = lo.split("/", 1)[-1]
        rank = (0 if lo == t else 1 if name == t else 2 if lo.startswith(t) else
                3 if name.startswith(t) else 4)
        return rank, -dl[i]

    assert [key(i) for i in got] == [key(i) for i in want]
    assert all(t in i.lower() for i in got)


def test_id_index_resolve_and_contains(store):
    index = ModelIdIndex.from_frame(q.model_ids_downloads(store))
    assert PHI2 in index and "nope/nope" not in index
    assert index.resolve(PHI2) == PHI2
    assert index.resolve("MICROSOFT/PHI-2") == PHI2
    assert index.resolve("microsoft/phi") is None
    assert index.resolve("") is None
    assert index.search(PHI2)[0] == PHI2  # the exact id first
    assert index.search("gpt2")[0] == "openai-community/gpt2"  # then an exact name
    assert len(index) == len(store.rows("MATCH (m:Model) RETURN m.id AS id"))


def test_id_index_on_760k_ids():
    # size as on the full graph; the speed is measured by bench/id_index.py, not here
    ids = [f"org{i % 5000}/model-{i}-{'llama' if i % 7 == 0 else 'bert'}" for i in range(760_000)]
    index = ModelIdIndex(ids, range(len(ids)))
    assert len(index) == len(ids)
    assert index.search("org43/model-43-")[0] == "org43/model-43-bert"
    hits = index.search("llama", limit=50)
    assert len(hits) == 50 and all("llama" in h for h in hits)
    # most downloaded first among equal ranks (downloads = position here)
    assert [int(h.split("-")[1]) for h in hits] == sorted((int(h.split("-")[1]) for h in hits), reverse=True)





def test_id_index_resolves_legacy_names_and_words_in_any_order():
    ids = ["distilbert/distilbert-base-uncased", "someone/distilbert-base-uncased",
           "openai-community/gpt2", "a/gpt2", "b/gpt2", "x/twin", "y/twin",
           "meta-llama/Meta-Llama-3-8B", "QuantFactory/Meta-Llama-3-8B-GGUF", "z/llama-2-8b-3x"]
    downloads = [9_000_000, 12, 7_000_000, 800, 50, 100, 90, 1_600_000, 20_000, 5]
    index = ModelIdIndex(ids, downloads)
    # a bare legacy name: the canonical repo when it dominates its copies ...
    assert index.resolve("distilbert-base-uncased") == "distilbert/distilbert-base-uncased"
    assert index.resolve("GPT2") == "openai-community/gpt2"
    # ... never a guess between look-alikes, and never for a namespaced id that is not there
    assert index.resolve("twin") is None
    assert index.resolve("nobody/gpt2") is None and index.resolve("gpt") is None
    # words in any order, every word required, most downloaded first
    assert index.search("llama 3 8b") == ["meta-llama/Meta-Llama-3-8B",
                                          "QuantFactory/Meta-Llama-3-8B-GGUF", "z/llama-2-8b-3x"]
    assert index.search("8b gguf llama") == ["QuantFactory/Meta-Llama-3-8B-GGUF"]
    assert index.search("llama 70b") == []


def test_id_index_resolves_legacy_names_on_the_mini_graph(store):
    index = ModelIdIndex.from_frame(q.model_ids_downloads(store))
    assert index.resolve("distilbert-base-uncased") == "distilbert/distilbert-base-uncased"
    assert index.search("llama 3 8b")[0] == "meta-llama/Meta-Llama-3-8B-Instruct"
