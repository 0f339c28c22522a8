"""Parent resolution (IdResolver) and base-model parsing (tags, card, API) in ingest.lineage."""
from __future__ import annotations

import pytest

from ingest.lineage import UNRESOLVED_REASONS, IdResolver, normalise_id, parse_api_base_models, parse_base_models
from ingest.records import ModelRecord
from tests.conftest import shared_data_or_skip


@pytest.mark.parametrize("written,expected", [
    ("https://huggingface.co/org/x", "org/x"),
    ("http://hf.co/org/x/", "org/x"),
    ("huggingface.co/models/org/x", "org/x"),
    ("org/x/tree/main", "org/x"),
    ("org/x/blob/main/config.json", "org/x"),
    ("org/x@v1.0", "org/x"),
    (" 'org/x' ", "org/x"),
    ("org/x.git", "org/x"),
    ("/content/drive/x", "/content/drive/x"),  # a local path keeps its leading slash
])
def test_normalise_id(written, expected):
    assert normalise_id(written) == expected


@pytest.fixture
def resolver():
    ids = ["openai-community/gpt2", "xlnet/xlnet-base-cased", "distil-whisper/distil-small.en",
           "Org/Model", "mistralai/Mistral-7B-v0.1", "copier/Mistral-7B-v0.1",
           "a/twin", "b/twin", "google-bert/bert-base-uncased", "someone/bert-base-uncased"]
    downloads = {"mistralai/Mistral-7B-v0.1": 700_000, "copier/Mistral-7B-v0.1": 1_000,
                 "a/twin": 10, "b/twin": 9}
    references = {"mistralai/Mistral-7B-v0.1": 2_000, "a/twin": 1, "b/twin": 1}
    return IdResolver(ids, downloads=downloads, references=references)


@pytest.mark.parametrize("written,resolved,how", [
    ("openai-community/gpt2", "openai-community/gpt2", "exact"),
    ("https://huggingface.co/Org/Model/", "Org/Model", "normalised"),
    ("org/model", "Org/Model", "case"),
    ("gpt2", "openai-community/gpt2", "legacy_alias"),
    ("bert-base-uncased", "google-bert/bert-base-uncased", "legacy_alias"),
    ("xlnet-base-cased", "xlnet/xlnet-base-cased", "unique_name"),
    ("distil-small.en", "distil-whisper/distil-small.en", "unique_name"),
    ("Mistral-7B-v0.1", "mistralai/Mistral-7B-v0.1", "dominant_name"),
])
def test_resolves_every_unambiguous_id(resolver, written, resolved, how):
    res = resolver.explain(written)
    assert (res.id, res.known, res.how) == (resolved, True, how)
    assert resolver.resolve(written) == (resolved, True)


@pytest.mark.parametrize("written,reason", [
    ("twin", "ambiguous"),                 # two copies, neither the clear original
    ("nothing-like-it", "unknown_name"),
    ("./outputs/checkpoint-500", "local_path"),
    ("/content/drive/MyDrive/llama", "local_path"),
    ("C:\\models\\llama", "local_path"),
    ("models/llama-3-8b", "local_path"),
    ("westernCartoon_v10.safetensors", "local_path"),
    ("output_2", "local_path"),
    ("None", "placeholder"),
    ("{{base_model}}", "placeholder"),
    ("nobody-here/x", "namespace_unknown"),
    ("Org/gone", "deleted_or_renamed"),
])
def test_reports_the_rest_by_reason(resolver, written, reason):
    res = resolver.explain(written)
    assert not res.known and res.how == reason and reason in UNRESOLVED_REASONS
    assert resolver.resolve(written) == (written, False)  # unresolved ids stay as written


def test_resolver_add_updates_name_index():
    r = IdResolver(["a/solo"])
    assert r.explain("solo").how == "unique_name"
    r.add("b/solo")
    assert r.explain("solo").how == "ambiguous"  # no downloads known: no clear original
    assert sorted(r.candidates("SOLO")) == ["a/solo", "b/solo"]


def test_from_records_counts_downloads_and_parent_mentions():
    recs = [ModelRecord.from_api({"id": "big/base", "downloads": 1_000_000}),
            ModelRecord.from_api({"id": "copy/base", "downloads": 3}),
            ModelRecord.from_api({"id": "u/ft", "tags": ["base_model:big/base"]})]
    r = IdResolver.from_records(recs)
    assert r.explain("base").id == "big/base" and r.explain("base").how == "dominant_name"


@pytest.mark.parametrize("value,expected", [
    ({"relation": "quantized", "models": [{"id": "org/x"}]}, [("org/x", "quantized")]),
    ([{"relation": "merge", "models": [{"id": "a/x"}, {"id": "b/y"}]}],
     [("a/x", "merge"), ("b/y", "merge")]),
    ([{"id": "org/x", "relation": "adapter"}], [("org/x", "adapter")]),
    (["org/x", "https://huggingface.co/org/y"], [("org/x", None), ("org/y", None)]),
    ({"relation": "Quantization", "models": [{"id": "org/x"}]}, [("org/x", "quantized")]),
    (None, []), ("", []), (42, []), ({"relation": "merge"}, []), ([{"id": 7}], []),
])
def test_api_base_models_shapes(value, expected):
    assert parse_api_base_models(value) == expected


def test_recorded_relation_always_wins_and_says_its_source():
    links = parse_base_models(
        "u/child", ["base_model:org/a", "base_model:quantized:org/b", "gguf"],
        ["org/c"], None, api_base_models=[("org/a", "finetune")])
    got = {(b.parent, b.relation, b.inferred, b.source) for b in links}
    assert got == {("org/a", "finetune", False, "api"), ("org/b", "quantized", False, "typed_tag"),
                   ("org/c", "merge", True, "card")}  # 3 parents: the rule says merge
    # the card's base_model_relation is recorded too (not inferred)
    links = parse_base_models("u/c", ["base_model:org/a"], None, "adapter")
    assert [(b.relation, b.inferred, b.source) for b in links] == [("adapter", False, "tag")]
    # an API parent without a relation is a link whose type still has to be inferred
    links = parse_base_models("u/c", [], None, None, api_base_models=[("org/a", None)])
    assert [(b.parent, b.inferred, b.source) for b in links] == [("org/a", True, "api")]


def test_model_record_reads_api_fields():
    rec = ModelRecord.from_api({
        "id": "u/q-GGUF", "tags": ["gguf", "base_model:org/base"],
        "baseModels": {"relation": "quantized", "models": [{"id": "org/base"}]},
        "downloads": 10, "downloadsAllTime": 12345, "trendingScore": 7,
        "childrenModelCount": 3})
    assert [(b.parent, b.relation, b.inferred, b.source) for b in rec.base_models] == [
        ("org/base", "quantized", False, "api")]
    assert (rec.downloads, rec.downloads_all_time, rec.trending_score, rec.children_count) == (
        10, 12345, 7.0, 3)
    bad = ModelRecord.from_api({"id": "u/x", "downloadsAllTime": "lots", "trendingScore": "nan",
                                "childrenModelCount": -1})
    assert (bad.downloads_all_time, bad.trending_score, bad.children_count) == (None, None, None)


def test_resolution_on_the_july_2024_parents():
    """Real parents: more resolve than by exact/case/legacy matching alone, and every
    remaining one has a reason."""
    import gzip

    import orjson

    listing = shared_data_or_skip("hub-2024-07", "models.jsonl.gz")
    ids, downloads, parents = [], {}, {}
    with gzip.open(listing, "rb") as fh:
        for line in fh:
            d = orjson.loads(line)
            ids.append(d["id"])
            downloads[d["id"]] = d.get("downloads") or 0
            for t in d.get("tags") or ():
                if t.startswith("base_model:"):
                    p = t.split(":", 1)[1]
                    parents[p] = parents.get(p, 0) + 1
    refs = {p: n for p, n in parents.items() if p in downloads}
    full = IdResolver(ids, downloads=downloads, references=refs)
    res = {p: full.explain(p) for p in parents}
    old = sum(1 for r in res.values() if r.how in ("exact", "case", "legacy_alias"))
    new = sum(1 for r in res.values() if r.known)
    assert new > old + 50
    assert {r.how for r in res.values() if not r.known} <= set(UNRESOLVED_REASONS)
    assert res["xlnet-base-cased"].id == "xlnet/xlnet-base-cased"
    assert res["distil-small.en"].id == "distil-whisper/distil-small.en"
