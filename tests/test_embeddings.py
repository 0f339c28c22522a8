"""analytics/embeddings.py: the texts that are embedded, and the encoder variant: its choice is
measured once per CPU signature and candidate set, cached in a file, read back without
measuring, gated on agreement with fp32; and the worker count. (Embedding the mini graph, the
vector cache and search: tests/test_retrieval.py.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from analytics import embeddings as E

TEXTS = E.calibration_texts(24, seed=3)


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """No choice remembered by this process, none cached, no variant forced."""
    monkeypatch.setattr(E, "_CHOICE", {})
    monkeypatch.setenv("HUBATLAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HUBATLAS_EMBED_VARIANT", raising=False)
    return tmp_path / "cache" / "embed-variant.json"


def test_choice_is_measured_once_then_read_from_the_cache(fresh, monkeypatch):
    candidates = ("bf16", "fp32")
    assert E.cached_choice(candidates=candidates) is None
    first = E.choose_variant(candidates=candidates, texts=TEXTS)
    assert not first.cached and first.variant in candidates
    assert set(first.rates) == set(candidates) and all(r > 0 for r in first.rates.values())
    assert first.cosines["fp32"] == pytest.approx(1.0, abs=1e-6)
    assert first.cosines["bf16"] > 0.999  # bf16 reproduces fp32
    # the fastest candidate that passes the quality gate
    assert first.variant == max(candidates, key=lambda v: first.rates[v])
    # then the fastest batch size of that variant
    assert set(first.batch_rates) == set(E.BATCH_CANDIDATES)
    assert all(r > 0 for r in first.batch_rates.values())
    assert first.batch_size == max(first.batch_rates, key=first.batch_rates.get)
    assert f"batch {first.batch_size}" in first.describe()
    stored = json.loads(fresh.read_text())
    (key, rec), = stored.items()
    assert key.startswith(E.cpu_signature()) and key.endswith("| bf16,fp32")
    assert rec["variant"] == first.variant and rec["batch_size"] == first.batch_size

    monkeypatch.setattr(E, "_CHOICE", {})  # a new process: the file answers, nothing measured
    again = E.choose_variant(candidates=candidates, texts=["never encoded"])
    assert again.cached and again.variant == first.variant and again.rates == first.rates
    assert again.batch_rates == first.batch_rates and again.batch_size == first.batch_size
    assert E.cached_choice(candidates=candidates) == again
    assert "cached choice" in again.describe() and first.variant in again.describe()

    remeasured = E.choose_variant(candidates=candidates, texts=TEXTS, refresh=True)
    assert not remeasured.cached
    assert json.loads(fresh.read_text())[key]["measured_at"] == remeasured.measured_at


def test_a_candidate_that_does_not_reproduce_fp32_is_never_chosen(fresh):
    # no variant can reach a cosine above 1: the gate leaves only the fp32 reference
    choice = E.choose_variant(candidates=("bf16",), texts=TEXTS, min_cosine=1.5)
    assert choice.variant == "fp32" and choice.cosines["bf16"] < 1.5


def test_a_candidate_whose_runtime_is_missing_is_left_out(fresh, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    choice = E.choose_variant(candidates=("openvino-bf16", "fp32"), texts=TEXTS)
    assert choice.variant == "fp32" and "openvino-bf16" not in choice.rates
    assert "openvino-bf16 cannot run here" in caplog.text


def test_openvino_variant_reproduces_fp32_in_worker_processes_without_pinning(tmp_path):
    ov = E.TextEncoder(variant="openvino-bf16", batch_size=8)
    ref = E.TextEncoder(variant="fp32", batch_size=8).encode(TEXTS)
    vecs = ov.encode(TEXTS)
    assert (vecs * ref).sum(1).min() >= E.MIN_COSINE
    compiled = ov._ov.get_compiled_model()
    # pinned, every process's threads would share the same first cores
    assert compiled.get_property("ENABLE_CPU_PINNING") is False
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
    # two spawned workers, as a full build runs them (in a fresh interpreter: spawn re-runs
    # the parent's __main__, which in this process may be a Streamlit page from AppTest)
    script = textwrap.dedent("""
        import numpy as np
        from analytics import embeddings as E
        texts = E.calibration_texts(24, seed=3)
        ov = E.TextEncoder(variant="openvino-bf16", batch_size=8)
        got = np.zeros((len(texts), E.DIM), np.float16)
        chunks = [np.arange(0, 12), np.arange(12, len(texts))]
        for idx, part in E._encode_chunks(ov, texts, chunks, jobs=2):
            got[idx] = part
        np.save("got.npy", got)
    """)
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=300,
                   env={**os.environ, "PYTHONPATH": str(Path(E.__file__).parents[1])})
    np.testing.assert_allclose(np.load(tmp_path / "got.npy").astype(np.float32), vecs,
                               atol=2e-3)


def test_cache_records_are_per_signature_and_candidates(fresh):
    fresh.parent.mkdir(parents=True)
    other = {"variant": "bf16", "signature": "Some Other CPU [avx2]", "rates": {"bf16": 1.0},
             "cosines": {"bf16": 1.0}, "measured_at": "2026-01-01T00:00:00", "batch_size": 64,
             "batch_rates": {"64": 1.0}}
    fresh.write_text(json.dumps({"Some Other CPU [avx2]; torch 0 | bf16,fp32,onnx-fp32": other,
                                 E._choice_key(("fp32",)): {**other, "variant": "fp32"}}))
    assert E.cached_choice() is None  # another CPU's choice is not this one's
    assert E.cached_choice(candidates=("fp32",)).variant == "fp32"
    assert E.cached_choice(candidates=("fp32",)).batch_rates == {64: 1.0}


def test_a_cached_choice_without_a_batch_size_is_measured_again(fresh):
    """Choices cached before the batch size was measured."""
    fresh.parent.mkdir(parents=True)
    old = {"variant": "fp32", "signature": E.cpu_signature(), "rates": {"fp32": 1.0},
           "cosines": {"fp32": 1.0}, "measured_at": "2026-01-01T00:00:00"}
    fresh.write_text(json.dumps({E._choice_key(("fp32",)): old}))
    assert E.cached_choice(candidates=("fp32",)) is None
    choice = E.choose_variant(candidates=("fp32",), texts=TEXTS[:8])
    assert not choice.cached and choice.batch_size in E.BATCH_CANDIDATES


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", json.dumps({"k": "v"})])
def test_a_damaged_cache_file_is_remeasured_and_rewritten(fresh, content):
    fresh.parent.mkdir(parents=True)
    fresh.write_text(content)
    assert E.cached_choice(candidates=("fp32",)) is None
    choice = E.choose_variant(candidates=("fp32",), texts=TEXTS[:8])
    assert not choice.cached and choice.variant == "fp32"
    assert json.loads(fresh.read_text())[E._choice_key(("fp32",))]["variant"] == "fp32"


def test_auto_encoder_uses_the_cached_choice_without_measuring(fresh):
    fresh.parent.mkdir(parents=True)
    rec = {"variant": "fp32", "signature": E.cpu_signature(), "rates": {"fp32": 1.0},
           "cosines": {"fp32": 1.0}, "measured_at": "2026-01-01T00:00:00", "batch_size": 32,
           "batch_rates": {"32": 2.0, "128": 1.0}}
    fresh.write_text(json.dumps({E._choice_key(E.AUTO_CANDIDATES): rec}))
    enc = E.TextEncoder()  # auto
    assert enc.variant == "fp32" and enc.key == "minilm-l6-fp32-L64" and enc.batch_size == 32
    assert E.TextEncoder(variant="fp32").batch_size == 32  # the variant the choice measured
    assert E.TextEncoder(variant="bf16").batch_size == E.DEFAULT_BATCH  # not measured
    assert E.TextEncoder(variant="bf16", batch_size=7).batch_size == 7
    vec = enc.encode(["whisper small speech recognition"])
    assert vec.shape == (1, E.DIM) and np.isclose(np.linalg.norm(vec), 1.0, atol=1e-5)


def test_a_build_keeps_the_variant_whose_vectors_are_cached(fresh, monkeypatch, tmp_path):
    fresh.parent.mkdir(parents=True)
    rec = {"variant": "openvino-bf16", "signature": E.cpu_signature(),
           "rates": {"bf16": 2.0, "openvino-bf16": 3.0, "fp32": 1.0, "onnx-fp32": 1.5},
           "cosines": {"fp32": 1.0, "bf16": 0.99995, "openvino-bf16": 0.99998,
                       "onnx-fp32": 0.9989},
           "measured_at": "2026-01-01T00:00:00", "batch_size": 32, "batch_rates": {"32": 3.0}}
    fresh.write_text(json.dumps({E._choice_key(E.AUTO_CANDIDATES): rec}))
    root = tmp_path / "db"

    def cache(variant):
        folder = E.cache_folder(E.TextEncoder(variant=variant), root)
        E.VectorCache(folder).save(np.array(["a/b"]), E.text_hashes(["t"]),
                                   np.zeros((1, E.DIM), np.float16))

    assert E.encoder_for(root).variant == "openvino-bf16"  # nothing cached: the choice
    cache("onnx-fp32")  # below the gate (0.9989 < MIN_COSINE): not a reason to stay
    assert E.encoder_for(root).variant == "openvino-bf16"
    cache("fp32")
    cache("bf16")
    kept = E.encoder_for(root)  # the faster of the accepted variants with cached vectors
    assert kept.variant == "bf16" and kept.batch_size == E.DEFAULT_BATCH
    cache("openvino-bf16")
    assert E.encoder_for(root).variant == "openvino-bf16"
    monkeypatch.setenv("HUBATLAS_EMBED_VARIANT", "fp32")
    assert E.encoder_for(tmp_path / "empty").variant == "fp32"


def test_usable_cpus_is_within_the_visible_cpus():
    n = E.usable_cpus()
    assert 1 <= n <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert n <= len(os.sched_getaffinity(0))


def test_split_words_and_text():
    assert E.split_words("TheBloke/Llama-2-7B-Chat-GGUF") == ["the", "bloke", "llama", "2", "7b",
                                                              "chat", "gguf"]
    text = E.model_text({
        "id": "org/bert-base-NER", "author": "org", "pipelineTag": "token-classification",
        "tags": ["transformers", "dataset:conll2003", "base_model:x/y", "region:us"],
        "datasets": ["conll2003"], "bases": ["x/y"], "base_relations": ["finetune"],
        "cardText": "---\nlicense: mit\n---\n# BERT NER\nFine-tuned **BERT**."})
    assert text.startswith("bert base ner. by org. task: token-classification")
    assert "base: x/y (finetune)" in text and "datasets: conll2003" in text
    assert "region:us" not in text and "base_model:" not in text and "BERT NER" in text


def test_encoder_rejects_unknown_variant():
    with pytest.raises(ValueError):
        E.TextEncoder(variant="fp8")
    with pytest.raises(ValueError):
        E.TextEncoder(variant="fp32", batch_size=0)
