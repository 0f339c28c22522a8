"""Parsing Hub API objects: both record shapes, lineage tags, dates, bad input."""
from __future__ import annotations

import pytest

from ingest.errors import RecordError
from ingest.lineage import IdResolver, infer_relation, parse_base_models
from ingest.records import DatasetRecord, ModelRecord, parse_datetime


def test_listing_record_camel_case():
    rec = ModelRecord.from_api({
        "_id": "x", "id": "org/child", "likes": 3, "downloads": 10,
        "tags": ["transformers", "dataset:squad", "arxiv:2106.09685", "license:mit",
                 "base_model:org/parent"],
        "pipeline_tag": "text-generation", "library_name": "transformers",
        "createdAt": "2024-05-01T10:00:00.000Z"})
    assert rec.id == "org/child" and rec.author == "org"
    assert rec.datasets == ("squad",) and rec.arxiv == ("2106.09685",) and rec.license == "mit"
    assert rec.created_at.year == 2024 and rec.created_at.tzinfo is not None
    assert [(b.parent, b.relation, b.inferred) for b in rec.base_models] == [
        ("org/parent", "finetune", True)]


def test_modelinfo_snake_case_with_typed_tags_and_card():
    rec = ModelRecord.from_api({
        "id": "a/q-GGUF", "created_at": "2025-01-02 03:04:05+00:00",
        "tags": ["gguf", "base_model:a/base", "base_model:quantized:a/base"],
        "card_data": "base_model:\n- a/base\nlicense: apache-2.0\n",
        "safetensors": {"total": 7_000_000}})
    assert [(b.parent, b.relation, b.inferred, b.source) for b in rec.base_models] == [
        ("a/base", "quantized", False, "typed_tag")]
    assert rec.license == "apache-2.0" and rec.parameters == 7_000_000


def test_backfill_date_is_unknown():
    assert parse_datetime("2022-03-02T23:29:04.000Z") is None
    assert parse_datetime("2022-03-02T23:29:05.000Z") is None
    assert parse_datetime("2022-03-02T23:29:06.000Z") is not None


@pytest.mark.parametrize("data,reason", [
    ({"likes": 1}, "missing_id"),
    (["not", "a", "dict"], "not_an_object"),
    ({"id": "has space/x"}, "bad_id"),
    ({"id": "a/b", "tags": "notalist"}, "bad_tags"),
    ({"id": "a/b", "createdAt": "yesterday"}, "bad_date"),
])
def test_malformed_records_raise_with_reason(data, reason):
    with pytest.raises(RecordError) as err:
        ModelRecord.from_api(data)
    assert err.value.reason == reason


def test_huge_tag_list_is_truncated_and_flagged():
    rec = ModelRecord.from_api({"id": "a/b", "tags": [f"t{i}" for i in range(5000)]})
    assert len(rec.tags) == 2000 and rec.tags_truncated


def test_card_base_model_list_and_relation():
    links = parse_base_models("m/merged", [], ["a/x", "b/y"], None)
    assert {(link.parent, link.relation) for link in links} == {("a/x", "merge"), ("b/y", "merge")}
    links = parse_base_models("m/l", [], "a/x", "adapter")
    assert [(link.relation, link.inferred) for link in links] == [("adapter", False)]


@pytest.mark.parametrize("child,tags,library,expected", [
    ("u/llama-3-8b-GGUF", ["gguf"], None, "quantized"),
    ("u/model-4bit", [], "transformers", "quantized"),
    ("u/lora", ["peft"], "peft", "adapter"),
    ("u/merged", ["mergekit"], "transformers", "merge"),
    ("u/chat-ft", ["transformers"], "transformers", "finetune"),
])
def test_relation_inference(child, tags, library, expected):
    assert infer_relation(child, tags, 1, library=library) == expected


def test_id_resolver_legacy_and_case():
    resolver = IdResolver(["openai-community/gpt2", "FacebookAI/xlm-roberta-base", "Org/Model"])
    assert resolver.resolve("gpt2") == ("openai-community/gpt2", True)
    assert resolver.resolve("xlm-roberta-base") == ("FacebookAI/xlm-roberta-base", True)
    assert resolver.resolve("org/model") == ("Org/Model", True)
    assert resolver.resolve("nobody/here") == ("nobody/here", False)
    resolver.add("openai-community/gpt2")  # adding twice must not make it ambiguous
    assert resolver.resolve("gpt2")[1]


def test_dataset_record():
    rec = DatasetRecord.from_api({"id": "u/d", "tags": ["task_categories:question-answering",
                                                        "license:mit"], "description": "x" * 9000})
    assert rec.tasks == ("question-answering",) and len(rec.description) == 4000
