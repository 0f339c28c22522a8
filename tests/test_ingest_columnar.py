"""The first load's columnar fast path (`ingest.columnar`) builds exactly the graph, rejects and
report of the record-by-record path, on real listing lines mixed with poison records (and the
same records re-serialised, with duplicated ids), and really takes the plain rows."""
from __future__ import annotations

import gzip
import itertools
import json
import time
from pathlib import Path

import pyarrow as pa
import pytest

from graph.schema import NODE_SPECS, REL_SPECS, Label, Rel
from graph.store import open_store
from ingest import relation_model
from ingest.columnar import _edges, read_listing
from ingest.records import ModelRecord
from ingest.relation_features import author_habits, model_frame
from ingest.relation_model import retype_in_child, retype_links
from ingest.run import ingest
from ingest.sources import SnapshotSource
from tests.conftest import shared_data_or_skip
from tests.test_ingest_poison import _interleave, build_poison, load_real

N_MODELS, N_INFOS, N_DATASETS = 6000, 300, 3000


def _raw(path: Path, n: int) -> list[bytes]:
    with gzip.open(path, "rb") as fh:
        return [line.rstrip(b"\n") for line in itertools.islice(fh, n)]


def _dump(root: Path) -> dict:
    """Every node with every property and every relation with its properties, except the run's
    own (its IngestRun node, and the observations' run id and time)."""
    store = open_store(read_only=True, root=root)
    try:
        out: dict = {}
        for label, spec in NODE_SPECS.items():
            if label is Label.INGEST_RUN:
                continue
            cols = ", ".join(f"n.{p} AS {p}" for p, _ in spec.properties)
            out[label.value] = sorted(
                tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in r.items())
                for r in store.rows(f"MATCH (n:{label.value}) RETURN {cols}"))
        for spec in REL_SPECS.values():
            props = [p for p, _ in spec.properties
                     if not (spec.rel is Rel.OBSERVED_IN and p == "at")]
            ret = "".join(f", e.{p} AS {p}" for p in props)
            target = "" if spec.rel is Rel.OBSERVED_IN else ", b.id AS b"
            for src, dst in spec.pairs:
                out[(spec.rel.value, src.value, dst.value)] = sorted(
                    tuple(r.values()) for r in store.rows(
                        f"MATCH (a:{src.value})-[e:{spec.rel.value}]->(b:{dst.value}) "
                        f"RETURN a.id AS a{target}{ret}"))
        return out
    finally:
        store.close()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """Real lines as recorded, poison lines, and real records re-serialised with spaces
    (`"gated": false`) and repeated later in the file (a duplicate id to merge)."""
    hub = shared_data_or_skip("hub-2024-07")
    real = load_real(hub)
    poison = build_poison(real)
    folder = tmp_path_factory.mktemp("columnar") / "mixed"
    folder.mkdir()
    for name, key, n in (("models.jsonl.gz", "models", N_MODELS),
                         ("model_info.jsonl.gz", "infos", N_INFOS),
                         ("datasets.jsonl.gz", "datasets", N_DATASETS)):
        lines = _raw(hub / name, n)
        again = [json.dumps(json.loads(line)).encode() for line in lines[::50]]
        bad = [x if isinstance(x, bytes) else json.dumps(x).encode() for x in poison.lines[key]]
        body = _interleave(lines, bad) + again + [b"", b"   "]
        (folder / name).write_bytes(gzip.compress(b"\n".join(body) + b"\n"))
    spaces = _interleave([json.dumps(s).encode() for s in real["spaces"]], poison.lines["spaces"])
    (folder / "spaces.jsonl.gz").write_bytes(gzip.compress(b"\n".join(spaces) + b"\n"))
    return folder


def test_fast_path_takes_the_plain_rows(mixed):
    models = read_listing(mixed / "models.jsonl.gz", "model")
    datasets = read_listing(mixed / "datasets.jsonl.gz", "dataset")
    # models with base_model tags (15%), duplicates and poison are left to the record path
    assert models.table.num_rows > 0.7 * N_MODELS
    assert datasets.table.num_rows > 0.9 * N_DATASETS
    assert models.n_lines == models.table.num_rows + len(models.slow)


def test_columnar_first_load_equals_record_by_record(mixed, tmp_path):
    fast = ingest(SnapshotSource(mixed), root=tmp_path / "fast", columnar=True)
    slow = ingest(SnapshotSource(mixed), root=tmp_path / "slow", columnar=False)
    assert fast.mode == slow.mode == "bulk"
    for name in ("read", "loaded", "skipped", "rejects", "lineage", "counts", "watermark"):
        assert getattr(fast, name) == getattr(slow, name), name
    assert sum(fast.rejects.values()) > 50 and fast.skipped["model:merged_duplicate_id"] > 100
    assert _dump(tmp_path / "fast") == _dump(tmp_path / "slow")


def test_plain_edges_are_what_strip_leaves_alone():
    values = ["a", "ab", "a b", " a", "a ", "", "\u00e9", "a\u00e9", "\u00e9a", "a\u00a0",
              "\u2003a", "a\x1f", "\tb", "x:y", None, "license:", "license: mit",
              "license:mit"]
    ok = _edges(pa.array(values, pa.string())).tolist()
    assert ok == [v is not None and v != "" and v.isascii() and v.strip() == v
                  and v[0] > " " and v[-1] > " " and v[-1] != "\x7f" for v in values]
    after = _edges(pa.array(values, pa.string()), skip=len("license:")).tolist()
    assert [v for v, good in zip(values, after) if good and v.startswith("license:")] == [
        "license:mit"]


def test_odd_line_endings_and_blank_lines(tmp_path):
    """CRLF lines, padded lines, blank and whitespace-only lines, no newline at the end: the
    same records in the same order as the record path reads them."""
    models = [{"id": f"org{i % 3}/m{i}", "downloads": i, "likes": 1,
               "tags": ["license:mit", f"dataset:d{i}"] + ([f"base_model:org0/m{i - 1}"]
                                                           if i % 4 == 1 else []),
               "createdAt": "2023-05-01T10:00:00.000Z"} for i in range(40)]
    lines = [json.dumps(m).encode() for m in models]
    lines[3] += b"\r"
    lines[5] = b"  " + lines[5] + b"\t"
    lines[7] = json.dumps(models[7], separators=(",", ":")).encode()
    body = b"\n".join(lines[:10]) + b"\n\n \x0b\n" + b"\n".join(lines[10:]) + b"\n" + lines[0]
    snap = tmp_path / "snap"
    snap.mkdir()
    (snap / "models.jsonl").write_bytes(body)
    part = read_listing(snap / "models.jsonl", "model")
    assert part.n_lines == 41 and part.table.num_rows + len(part.slow) == 41
    assert sorted(p for p, _ in part.slow)[:2] == [3, 5]  # padded lines: the record path
    fast = ingest(SnapshotSource(snap), root=tmp_path / "fast", columnar=True)
    slow = ingest(SnapshotSource(snap), root=tmp_path / "slow", columnar=False)
    for name in ("read", "loaded", "skipped", "rejects", "lineage", "counts", "watermark"):
        assert getattr(fast, name) == getattr(slow, name), name
    assert fast.skipped["model:merged_duplicate_id"] == 1
    assert _dump(tmp_path / "fast") == _dump(tmp_path / "slow")


def _linked(n: int) -> list[ModelRecord]:
    return [ModelRecord.from_api({"id": f"a{i % 5}/m{i}-GGUF",
                                  "tags": [f"base_model:a/p{i % 7}", "gguf" if i % 2 else "lora"]})
            for i in range(n)]


def test_typing_in_a_child_process_equals_in_process(monkeypatch):
    here, there = _linked(300), _linked(300)
    retype_links(here)
    child = retype_in_child(there, lambda: author_habits(model_frame(there)))
    assert child is not None and child.wait()
    assert [m.base_models for m in there] == [m.base_models for m in here]
    # a child that never answers is killed and reported, the records left as they were
    monkeypatch.setattr(relation_model, "retype_links", lambda *a, **k: time.sleep(60))
    hung = _linked(3)
    before = [m.base_models for m in hung]
    child = retype_in_child(hung, lambda: author_habits(model_frame(hung)))
    started = time.perf_counter()
    assert child.wait(timeout_s=1.0) is False
    assert time.perf_counter() - started < 30 and [m.base_models for m in hung] == before


def test_plain_links_are_the_links_records_parse():
    """`PlainLinks` (by column) against `parse_base_models` (the record path, kept as the
    reference) on the odd cases: URL and quoted parents, repeats, empty and local values,
    merge/adapter/quantised evidence, tags and libraries that are not ASCII."""
    from ingest.lineage import parse_base_models
    from ingest.lineage_columnar import PlainLinks, typed_rows

    rows = [("a/m1", ["base_model:org/x"], None),
            ("a/m2-GGUF", ["base_model:org/x", "base_model:https://huggingface.co/org/x"], None),
            ("a/m3", ["base_model:org/x", "base_model:org/y", "license:mit"], None),
            ("a/m4", ["base_model:'org/z'", "LoRA"], None),
            ("a/m5", ["base_model:org/p", "MergeKit"], None),
            ("a/m6", ["base_model:org/p"], "PEFT"),
            ("a/m7", ["base_model:", "base_model: org/q ", "base_model:a b"], None),
            ("a/m8", ["base_model:org/k", "\u212aNOWN", "gguf"], None),
            ("a/m9", ["base_model:org/k"], "p\u00e9ft"),
            ("a/m10", ["dataset:x", "base_model:org/r/tree/main", "arxiv:1"], None),
            ("a/m11", ["mergekit"], None)]
    table = pa.table({"id": [r[0] for r in rows], "tags": [r[1] for r in rows],
                      "library_name": [r[2] for r in rows]})
    assert not typed_rows(table).any()
    assert typed_rows(pa.table({"tags": [["base_model:merge:org/x"], ["x"]]})).tolist() == [
        True, False]
    links = PlainLinks.of(table)
    got = list(zip(links.child, links.parent, links.relation))
    want = [(rid, b.parent, b.relation) for rid, tags, lib in rows
            for b in parse_base_models(rid, tags, library=lib)]
    assert got == want and len(want) >= 10
    parse = {rid: parse_base_models(rid, tags, library=lib) for rid, tags, lib in rows}
    assert links.n_parents.tolist() == [len(parse[c]) for c in links.child]
