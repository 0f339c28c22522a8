"""graph/vocabulary.py: one definition of a quantised model, read by ingest and by search."""
from __future__ import annotations

import pytest

from analytics.retrieval import is_quantized
from graph.schema import LINEAGE_RELS
from graph.vocabulary import looks_quantized
from ingest.lineage import RELATIONS, infer_relation


@pytest.mark.parametrize("repo_id, tags", [
    ("bartowski/Meta-Llama-3-8B-Instruct-GGUF", ()),
    ("TheBloke/Mistral-7B-v0.1-AWQ", ()),
    ("unsloth/llama-3-8b-bnb-4bit", ()),
    ("someone/phi-2-q4_k_m", ()),
    ("mlx-community/phi-2", ("mlx",)),
    ("org/model", ("gptq",)),
    ("org/model", ("8-bit",)),
])
def test_quantised_names_and_tags(repo_id, tags):
    assert looks_quantized(repo_id, tags)
    assert is_quantized(repo_id, tags, None)  # search reads the same rules
    assert infer_relation(repo_id, list(tags), n_parents=1) == "quantized"  # and ingest


@pytest.mark.parametrize("repo_id, tags", [
    ("openai-community/gpt2", ("transformers", "text-generation")),
    ("quantized-lab/bert-finetuned", ()),  # the namespace is not read
    ("google-bert/bert-base-uncased", ("fill-mask", "license:apache-2.0")),
])
def test_not_quantised(repo_id, tags):
    assert not looks_quantized(repo_id, tags)
    assert not is_quantized(repo_id, tags, None)
    assert infer_relation(repo_id, list(tags), n_parents=1) == "finetune"


def test_relation_names_are_the_schemas():
    assert RELATIONS == tuple(LINEAGE_RELS)
