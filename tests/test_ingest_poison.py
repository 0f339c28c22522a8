"""Poison records mixed into real ones: the cron run publishes, every real record lands with its
values, every poison is counted by reason. Both the first load (bulk) and the incremental path,
through the CLI exactly as cron runs it, plus the live path through the HTTP fake Hub."""
from __future__ import annotations

import copy
import gzip
import itertools
import json
import zlib
from collections import Counter
from pathlib import Path

import orjson
import pytest

from graph import queries as q
from graph.generations import Generations
from graph.schema import NODE_SPECS, REL_SPECS, Label, Rel
from graph.store import open_store
from ingest.hub import HubSource
from ingest.run import ingest
from ingest.sources import LiveHubSource, SnapshotSource
from tests.conftest import shared_data_or_skip
from tests.fakehub import FakeHub
from tests.test_ingest import cli

N_MODELS, N_INFOS, N_DATASETS = 200, 60, 120


def _head(path: Path, n: int) -> list[dict]:
    with gzip.open(path, "rb") as fh:
        return [orjson.loads(line) for line in itertools.islice(fh, n)]


def _lines(objs) -> list[bytes]:
    return [x if isinstance(x, bytes) else json.dumps(x).encode() for x in objs]


def _write_gz(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))


def _readable_lines(data: bytes) -> list[bytes]:
    """Complete lines a reader gets out of (possibly truncated) multi-member gzip data."""
    out, rest = b"", data
    while rest:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out += d.decompress(rest)
        if not d.eof:  # truncated: what was decompressed is all there is
            break
        rest = d.unused_data
    return [line for line in out.split(b"\n")[:-1] if line.strip()]


@pytest.fixture(scope="module")
def real() -> dict[str, list[dict]]:
    return load_real(shared_data_or_skip("hub-2024-07"))


def load_real(hub: Path) -> dict[str, list[dict]]:
    """Real records from the July 2024 recording (and Spaces rebuilt from them)."""
    models = _head(hub / "models.jsonl.gz", N_MODELS)
    # the first full records, and the first ones used by Spaces (few are: 324 of 8,650)
    infos, with_spaces = [], 0
    with gzip.open(hub / "model_info.jsonl.gz", "rb") as fh:
        for line in fh:
            rec = orjson.loads(line)
            if len(infos) < N_INFOS or (rec.get("spaces") and with_spaces < 30):
                infos.append(rec)
                with_spaces += bool(rec.get("spaces")) and len(infos) > N_INFOS
            if len(infos) >= N_INFOS and with_spaces >= 30:
                break
    datasets = _head(hub / "datasets.jsonl.gz", N_DATASETS)
    # The recordings hold no Space listing: Spaces are rebuilt from the real `spaces` lists of
    # the full model records (real Space ids, the real models they run).
    users: dict[str, list[str]] = {}
    for m in infos:
        for sid in m.get("spaces") or []:
            users.setdefault(sid, []).append(m["id"])
    spaces = [{"id": sid, "author": sid.split("/")[0], "sdk": "gradio", "likes": i % 7,
               "createdAt": "2024-03-01T00:00:00.000Z", "models": mids}
              for i, (sid, mids) in enumerate(sorted(users.items())[:90])]
    return {"models": models, "infos": infos, "datasets": datasets, "spaces": spaces}


# -- the poison: (kind, record or raw line, expected reject counts) ------------------------
COUNTS = ["lots", "12", True, 1.5, [1], {"n": 1}, -5, 2**63, 2**64, 1e29]
COUNT_PROBLEM = ["not_an_int"] * 6 + ["negative"] + ["out_of_range"] * 3
NAMES = [{"a": 1}, ["x"], 5, True, "x" * 100_000]
NAME_PROBLEM = ["not_a_string"] * 4 + ["too_long"]
DATES = ["yesterday", 12345, {"$date": 1}, "9999-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]
DATE_PROBLEM = ["not_a_date"] * 3 + ["out_of_range"] * 2
LISTS = ["text", 5, {"a": 1}]
ITEMS = [5, {"x": 1}, ["n"], None, "y" * 5000]
ITEM_PROBLEM = ["item_not_a_string"] * 4 + ["item_too_long"]

#: raw lines that are not a record at all: each rejected by reason
BAD_LINES = [
    (b"{not json", "bad_json"), (b'{"id": "p/nan", "downloads": NaN}', "bad_json"),
    (b'{"id": "p/inf", "likes": Infinity}', "bad_json"),
    (b'{"id": "p/huge", "downloads": 1e400}', "bad_json"),
    (b'{"id": "p/surrogate\\ud800"}', "bad_json"), (b"[" * 3000 + b"]" * 3000, "bad_json"),
    (b"5", "not_an_object"), (b'"a string"', "not_an_object"), (b"[1, 2]", "not_an_object"),
    (b"null", "not_an_object"), (b'{"likes": 1}', "missing_id"), (b'{"id": 5}', "missing_id"),
    (b'{"id": {"a": 1}}', "missing_id"), (b'{"id": ""}', "missing_id"),
    (b'{"id": "has space/x"}', "bad_id"), (b'{"id": "' + b"x" * 300 + b'"}', "bad_id"),
]


class Poison:
    def __init__(self) -> None:
        self.lines: dict[str, list[bytes]] = {"models": [], "infos": [], "datasets": [],
                                              "spaces": []}
        self.expected: Counter = Counter()
        #: id -> (label, property that must be null, properties that must equal the template's)
        self.dropped: dict[str, tuple[Label, str | None, dict]] = {}
        self.n = 0

    def record(self, file: str, kind: str, template: dict, patch: dict, issues: dict,
               null: str | None, keep: dict) -> None:
        self.n += 1
        rid = f"poison/{kind}-{self.n:03d}"
        rec = {**copy.deepcopy(template), "id": rid, "author": "poison", **patch}
        rec.pop("modelId", None)
        # copies add no lineage (the real records' lineage rejects stay what they are) and no
        # Space -> model links (relations out of real records stay what they are)
        if isinstance(rec.get("tags"), list):
            rec["tags"] = [t for t in rec["tags"] if not str(t).startswith("base_model:")]
        for key in ("cardData", "spaces"):
            if key not in patch:
                rec.pop(key, None)
        self.lines[file].append(json.dumps(rec).encode())
        self.expected.update({f"{kind}:{k}": v for k, v in issues.items()})
        label = {"model": Label.MODEL, "dataset": Label.DATASET, "space": Label.SPACE}[kind]
        self.dropped[rid] = (label, null, keep)

    def line(self, file: str, kind: str, raw: bytes, reason: str) -> None:
        self.lines[file].append(raw)
        self.expected[f"{kind}:{reason}"] += 1


def build_poison(real: dict) -> Poison:
    p = Poison()
    lm, info, ds, sp = real["models"][5], real["infos"][3], real["datasets"][2], real["spaces"][0]
    keep_m = {"downloads": lm["downloads"]}
    for key, prop in (("downloads", "downloads"), ("likes", "likes")):
        other = {"likes": lm["likes"]} if key == "downloads" else keep_m
        for value, problem in zip(COUNTS, COUNT_PROBLEM):
            p.record("models", "model", lm, {key: value}, {f"{key}:{problem}(dropped)": 1},
                     prop, other)
    for key, prop in (("pipeline_tag", "pipelineTag"), ("library_name", "libraryName")):
        for value, problem in zip(NAMES, NAME_PROBLEM):
            p.record("models", "model", lm, {key: value}, {f"{key}:{problem}(dropped)": 1},
                     prop, keep_m)
    for value, problem in zip(NAMES[:4], NAME_PROBLEM):
        p.record("models", "model", lm, {"author": value}, {f"author:{problem}(dropped)": 1},
                 None, keep_m)
    for key, prop in (("createdAt", "createdAt"), ("lastModified", "lastModified")):
        for value, problem in zip(DATES, DATE_PROBLEM):
            p.record("models", "model", lm, {key: value}, {f"{key}:{problem}(dropped)": 1},
                     prop, keep_m)
    for value in LISTS:
        p.record("models", "model", lm, {"tags": value}, {"tags:not_a_list(dropped)": 1},
                 "license", keep_m)
    for value, problem in zip(ITEMS, ITEM_PROBLEM):
        p.record("models", "model", lm, {"tags": ["license:mit", value, value]},
                 {f"tags:{problem}(dropped)": 2}, None, {**keep_m, "license": "mit"})
    # full records (model_info shape): nested and shaped fields
    keep_i = {"downloads": info["downloads"]}
    shaped = [
        ({"siblings": 5}, {"siblings:not_a_list(dropped)": 1}, None),
        ({"siblings": [5, {"rfilename": 3}]}, {"siblings:item_not_a_file(dropped)": 2}, None),
        ({"cardData": 5}, {"cardData:not_an_object(dropped)": 1}, None),
        ({"cardData": [1, 2]}, {"cardData:not_an_object(dropped)": 1}, None),
        ({"cardData": "x" * 1_000_001}, {"cardData:too_long(dropped)": 1}, None),
        ({"cardData": {"license": {"a": 1}}}, {"cardData.license:not_a_list(dropped)": 1}, None),
        ({"cardData": {"base_model": 7}}, {"cardData.base_model:not_a_list(dropped)": 1}, None),
        ({"cardData": {"base_model_relation": ["x"]}},
         {"cardData.base_model_relation:not_a_string(dropped)": 1}, None),
        ({"gated": 5}, {"gated:not_a_string(dropped)": 1}, "gated"),
        ({"gated": {"a": 1}}, {"gated:not_a_string(dropped)": 1}, "gated"),
        ({"safetensors": "big"}, {"safetensors:not_an_object(dropped)": 1}, "parameters"),
        ({"safetensors": {"total": "lots"}}, {"safetensors:not_an_int(dropped)": 1},
         "parameters"),
        ({"safetensors": {"total": -1}}, {"safetensors:negative(dropped)": 1}, "parameters"),
        ({"safetensors": {"total": 2**64}}, {"safetensors:out_of_range(dropped)": 1},
         "parameters"),
        ({"spaces": "text"}, {"spaces:not_a_list(dropped)": 1}, None),
        ({"spaces": [5, {"a": 1}]}, {"spaces:item_not_a_string(dropped)": 2}, None),
    ]
    for patch, issues, null in shaped:
        p.record("infos", "model", info, patch, issues, null, keep_i)
    for raw, reason in BAD_LINES:
        p.line("models", "model", raw, reason)
    # datasets
    keep_d = {"downloads": ds["downloads"]}
    for value, problem in zip(COUNTS, COUNT_PROBLEM):
        p.record("datasets", "dataset", ds, {"likes": value}, {f"likes:{problem}(dropped)": 1},
                 "likes", keep_d)
    for patch, issues, null in [
            ({"description": {"x": 1}}, {"description:not_a_string(dropped)": 1}, "description"),
            ({"tags": ["license:mit", 3]}, {"tags:item_not_a_string(dropped)": 1}, None),
            ({"cardData": 5}, {"cardData:not_an_object(dropped)": 1}, None),
            ({"gated": [1]}, {"gated:not_a_string(dropped)": 1}, "gated"),
            ({"lastModified": "2999-01-01T00:00:00Z"},
             {"lastModified:out_of_range(dropped)": 1}, "lastModified")]:
        p.record("datasets", "dataset", ds, patch, issues, null, keep_d)
    for raw, reason in BAD_LINES[:8]:
        p.line("datasets", "dataset", raw, reason)
    # spaces: an object as sdk crashed the engine on every rerun
    keep_s = {"likes": sp["likes"]}
    for value, problem in zip([{"name": "gradio"}, ["gradio"], 5, True, "s" * 5000],
                              NAME_PROBLEM):
        p.record("spaces", "space", sp, {"sdk": value}, {f"sdk:{problem}(dropped)": 1},
                 "sdk", keep_s)
    for patch, issues, null in [
            ({"models": "text"}, {"models:not_a_list(dropped)": 1}, None),
            ({"models": [5, {"a": 1}, None]}, {"models:item_not_a_string(dropped)": 3}, None),
            ({"likes": "many"}, {"likes:not_an_int(dropped)": 1}, "likes"),
            ({"createdAt": {"x": 1}}, {"createdAt:not_a_date(dropped)": 1}, "createdAt")]:
        p.record("spaces", "space", sp, patch, issues, null,
                 keep_s if "likes" not in patch else {})
    for raw, reason in BAD_LINES[:6]:
        p.line("spaces", "space", raw, reason)
    return p


def _interleave(real_lines: list[bytes], poison: list[bytes]) -> list[bytes]:
    out = list(real_lines)
    step = max(1, len(out) // max(1, len(poison)))
    for i, line in enumerate(poison):
        out.insert(min(len(out), (i + 1) * step + i), line)
    return out


def write_snapshots(real: dict, poison: Poison, folder: Path) -> tuple[Path, Path, int]:
    """`mixed/` (real + poison, spaces file truncated in its second gzip member) and
    `clean/` (exactly the real lines a reader gets out of `mixed/`). Returns both and the
    number of real records."""
    mixed, clean = folder / "mixed", folder / "clean"
    mixed.mkdir()
    clean.mkdir()
    files = {"models": "models.jsonl.gz", "infos": "model_info.jsonl.gz",
             "datasets": "datasets.jsonl.gz"}
    n_real = 0
    for key, name in files.items():
        lines = _lines(real[key])
        n_real += len(lines)
        _write_gz(mixed / name, _interleave(lines, poison.lines[key]))
        _write_gz(clean / name, lines)
    spaces = _lines(real["spaces"])
    first, second = spaces[:60], spaces[60:]
    member1 = gzip.compress(b"\n".join(_interleave(first, poison.lines["spaces"])) + b"\n")
    member2 = gzip.compress(b"\n".join(second) + b"\n")
    damaged = member1 + member2[: len(member2) // 2]
    (mixed / "spaces.jsonl.gz").write_bytes(damaged)
    readable = set(_readable_lines(damaged))
    kept = [line for line in spaces if line in readable]
    assert len(first) < len(kept) < len(spaces)  # some of the damaged member is readable
    _write_gz(clean / "spaces.jsonl.gz", kept)
    poison.expected["space:truncated_file"] += 1
    return mixed, clean, n_real + len(kept)


def _graph_rows(root: Path, ids: dict[Label, set[str]]) -> dict:
    """Every property of the given nodes, and every relation out of them with its properties."""
    store = open_store(read_only=True, root=root)
    try:
        out: dict = {}
        for label, wanted in ids.items():
            cols = ", ".join(f"n.{p} AS {p}" for p, _ in NODE_SPECS[label].properties)
            for r in store.rows(f"MATCH (n:{label.value}) RETURN {cols}"):
                if r["id"] in wanted:
                    out[(label.value, r["id"])] = tuple(
                        (k, tuple(v) if isinstance(v, list) else v) for k, v in r.items())
        for spec in REL_SPECS.values():
            if spec.rel is Rel.OBSERVED_IN:
                continue
            props = "".join(f", e.{p} AS {p}" for p, _ in spec.properties)
            for src, dst in spec.pairs:
                if src not in ids:
                    continue
                for r in store.rows(f"MATCH (a:{src.value})-[e:{spec.rel.value}]->"
                                    f"(b:{dst.value}) RETURN a.id AS a, b.id AS b{props}"):
                    if r["a"] in ids[src]:
                        out[(spec.rel.value, r["a"], dst.value, r["b"])] = tuple(r.items())
        return out
    finally:
        store.close()


def _real_ids(real: dict, clean: Path) -> dict[Label, set[str]]:
    spaces = {json.loads(line)["id"] for line in gzip.open(clean / "spaces.jsonl.gz")}
    return {Label.MODEL: {m["id"] for m in real["models"] + real["infos"]},
            Label.DATASET: {d["id"] for d in real["datasets"]}, Label.SPACE: spaces}


def _last_run(root: Path) -> dict:
    store = open_store(read_only=True, root=root)
    try:
        run = q.ingest_runs(store, 1).iloc[0].to_dict()
    finally:
        store.close()
    return {"status": run["status"], "rejects": Counter(json.loads(run["rejects"])),
            "counts": json.loads(run["counts"])}


def _assert_poison_landed(root: Path, poison: Poison, templates: dict) -> None:
    store = open_store(read_only=True, root=root)
    try:
        for rid, (label, null, keep) in poison.dropped.items():
            cols = ", ".join(f"n.{p} AS {p}" for p, _ in NODE_SPECS[label].properties)
            rows = store.rows(f"MATCH (n:{label.value} {{id: $id}}) RETURN {cols}", {"id": rid})
            assert rows and rows[0]["stub"] is False, rid
            if null is not None:
                assert rows[0][null] is None, (rid, null, rows[0][null])
            for prop, value in keep.items():
                assert rows[0][prop] == value, (rid, prop)
    finally:
        store.close()


def _published(root: Path) -> None:
    gens = Generations(root)
    assert gens.current_path() is not None and gens.pending_staging() is None


@pytest.fixture(scope="module")
def snapshots(real, tmp_path_factory):
    poison = build_poison(real)
    mixed, clean, n_real = write_snapshots(real, poison, tmp_path_factory.mktemp("poison"))
    return poison, mixed, clean, n_real


def test_poison_covers_every_family(snapshots):
    poison = snapshots[0]
    problems = {k.rsplit(":", 1)[-1].split("(")[0] for k in poison.expected}
    assert problems >= {"not_an_int", "negative", "out_of_range", "not_a_string", "too_long",
                        "not_a_date", "not_a_list", "item_not_a_string", "item_too_long",
                        "not_an_object", "item_not_a_file", "bad_json", "missing_id", "bad_id",
                        "truncated_file"}
    assert {k.split(":")[0] for k in poison.expected} == {"model", "dataset", "space"}
    assert sum(poison.expected.values()) >= 120


@pytest.mark.parametrize("path", ["bulk", "incremental"])
def test_poison_mixed_into_real_records(snapshots, real, tmp_path, path):
    poison, mixed, clean, n_real = snapshots
    dbs = {"mixed": tmp_path / "mixed", "clean": tmp_path / "clean"}
    for name, db in dbs.items():
        if path == "incremental":  # a small real first load, then the full file incrementally
            cli("run", "--snapshot", str(clean), "--limit", "40", db=db)
        snap = mixed if name == "mixed" else clean
        proc = cli("run", "--snapshot", str(snap), "--full", "--batch-size", "150", db=db,
                   check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]  # published, never "Aborted!"
        _published(db)
    got, want = _last_run(dbs["mixed"]), _last_run(dbs["clean"])
    assert got["status"] == "ok"
    # every poison counted by reason, nothing else changed: mixed = clean + poison, exactly
    assert got["rejects"] == want["rejects"] + poison.expected
    # every real record landed with exactly the values (and relations) of a clean load
    ids = _real_ids(real, clean)
    assert sum(len(v) for v in ids.values()) == n_real
    mixed_rows, clean_rows = _graph_rows(dbs["mixed"], ids), _graph_rows(dbs["clean"], ids)
    assert len(clean_rows) > n_real  # nodes and their relations
    assert mixed_rows == clean_rows
    # and every field-level poison record landed too, without its bad field
    _assert_poison_landed(dbs["mixed"], poison, real)
    # the graph still opens for the status command after the run
    status = json.loads(cli("status", "--json", db=dbs["mixed"]).stdout)
    assert status["runs"][0]["status"] == "ok"


def test_damaged_gzip_files_keep_what_is_readable(tmp_path):
    lines = [json.dumps({"id": f"u/m{i}", "likes": i}).encode() for i in range(3000)]
    data = gzip.compress(b"\n".join(lines) + b"\n")
    corrupt = bytearray(data)
    corrupt[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    cases = {"truncated_file": data[: len(data) // 2], "corrupt_file": bytes(corrupt)}
    readable = {}
    for reason, blob in cases.items():
        folder = tmp_path / reason
        folder.mkdir()
        (folder / "models.jsonl.gz").write_bytes(blob)
        _write_gz(folder / "datasets.jsonl.gz", [b'{"id": "u/d"}'])
        items = list(SnapshotSource(folder).iter_items())
        errors = [i for i in items if i.error]
        assert errors[-1].error == reason and errors[-1].kind == "model"
        good = [i for i in items if i.kind == "model" and not i.error]
        assert len(good) > 100
        assert [i.data["id"] for i in good[:100]] == [f"u/m{i}" for i in range(100)]
        readable[reason] = len(good)
        assert items[-1].kind == "dataset" and items[-1].data == {"id": "u/d"}  # next file read
    folder = tmp_path / "notgzip"
    folder.mkdir()
    (folder / "models.jsonl.gz").write_bytes(b"this is not gzip\n")
    assert [(i.kind, i.error) for i in SnapshotSource(folder).iter_items()] == [
        ("model", "corrupt_file")]
    report = ingest(SnapshotSource(tmp_path / "truncated_file"), root=tmp_path / "db")
    assert report.status == "ok" and report.rejects["model:truncated_file"] == 1
    assert report.loaded["model"] == readable["truncated_file"]
    assert report.loaded["dataset"] == 1


def test_poison_through_the_live_hub_path(real, tmp_path):
    """The Hub's JSON is decoded by the json module, which lets NaN, Infinity and lone
    surrogates through: they must be counted like any other bad value."""
    models = copy.deepcopy(real["models"][:80])
    poison = [
        {"id": "poison/nan", "downloads": float("nan"), "likes": 1},
        {"id": "poison/inf", "downloads": float("inf"), "likes": float("-inf")},
        {"id": "poison/huge", "downloads": 10**30, "likes": 2**63},
        {"id": "poison/sur", "pipeline_tag": "bad\ud800", "tags": ["ok", "x\udfff"]},
        {"id": "poison/sdk-like", "library_name": {"name": "transformers"}},
        "not-a-record", 42, None, {"likes": 3}, {"id": "bad\udc00/id"},
    ]
    with FakeHub(models=models + poison, datasets=[], spaces=[], max_page_size=25) as hub:
        source = LiveHubSource(HubSource(endpoint=hub.url, page_size=25, sleep=lambda s: None),
                               kinds=("model",))
        report = ingest(source, root=tmp_path)
    assert report.status == "ok"
    assert report.loaded["model"] == len({m["id"] for m in models}) + 5
    expected = Counter({"model:downloads:not_finite(dropped)": 2,
                        "model:likes:not_finite(dropped)": 1,
                        "model:downloads:out_of_range(dropped)": 1,
                        "model:likes:out_of_range(dropped)": 1,
                        "model:pipeline_tag:bad_unicode(dropped)": 1,
                        "model:tags:item_bad_unicode(dropped)": 1,
                        "model:library_name:not_a_string(dropped)": 1,
                        "model:not_an_object": 3, "model:missing_id": 1, "model:bad_id": 1})
    assert +Counter({k: report.rejects[k] for k in expected}) == expected
    store = open_store(read_only=True, root=tmp_path)
    try:
        m = q.get_model(store, "poison/nan")
        assert m.downloads is None and m.likes == 1
        assert q.get_model(store, "poison/sur").tags == ("ok",)
    finally:
        store.close()
