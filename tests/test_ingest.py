"""Ingest end to end on the real embedded engine: snapshot and fake-Hub sources, bad input,
incremental runs, kill -9 and resume, the CLI, and a reader process beside a writer."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from graph import queries as q
from graph.generations import Generations
from graph.store import open_store
from ingest.hub import HubSource
from ingest.run import ingest
from ingest.sources import LiveHubSource, SnapshotSource
from tests.conftest import MINI_SNAPSHOT, REPO
from tests.fakehub import BROKEN_ITEMS, FakeHub, load_fixture


def counts(root: Path) -> dict:
    store = open_store(read_only=True, root=root)
    try:
        return {"nodes": q.count_nodes(store), "rels": q.count_rels(store)}
    finally:
        store.close()


def content_counts(root: Path) -> dict:
    """Counts of everything but the run bookkeeping (run ids differ between runs)."""
    c = counts(root)
    c["nodes"].pop("IngestRun")
    c["rels"].pop("OBSERVED_IN")
    return c


def _job_args(args: tuple[str, ...]) -> list[str]:
    # the scheduled job's derived results run as in production, but the search index (slow
    # to embed, tested in tests/test_pipeline.py and tests/test_retrieval.py)
    return [*args, "--skip", "search"] if args and args[0] == "run" else list(args)


def cli(*args: str, db: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HUBATLAS_DB": str(db)}
    env.pop("NEO4J_URI", None)
    proc = subprocess.run([sys.executable, "-m", "ingest", *_job_args(args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"ingest {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_mini_snapshot_counts_and_rejects(mini_graph_root):
    c = counts(mini_graph_root)
    n = c["nodes"]
    # 427 real listing models + 8 crafted lines (5 broken) + the duplicate, plus phi-2 tree rows
    assert n["Model"] - n["Model (stub)"] == 488
    assert n["Dataset"] - n["Dataset (stub)"] == 90
    assert c["rels"]["FINETUNE_OF"] > 0 and c["rels"]["TRAINED_ON"] > 0
    store = open_store(read_only=True, root=mini_graph_root)
    runs = q.ingest_runs(store)
    store.close()
    rejects = json.loads(runs.iloc[0]["rejects"])
    assert rejects["model:bad_json"] == 1
    assert rejects["model:missing_id"] == 1
    assert rejects["lineage_self_loop"] >= 1
    assert rejects["lineage_cycle"] == 1  # cyc/a ⇄ cyc/b: one of the two edges is dropped
    assert rejects["model:tags_truncated(kept)"] == 1


def test_lineage_queries_on_mini_graph(mini_store):
    kids = q.descendant_counts(mini_store, "mistralai/Mistral-7B-v0.1")
    assert sum(kids.values()) >= 30
    desc = q.descendants(mini_store, "mistralai/Mistral-7B-v0.1", max_depth=2)
    assert desc["id"].is_unique and set(desc["depth"]) <= {1, 2}
    assert (desc.loc[desc["depth"] == 1, "parent"] == "mistralai/Mistral-7B-v0.1").all()
    child = desc.loc[desc["depth"] == 1, "id"].iloc[0]
    anc = q.ancestors(mini_store, child)
    assert "mistralai/Mistral-7B-v0.1" in set(anc["id"])
    assert "mistralai/Mistral-7B-v0.1" in q.roots(mini_store, child)
    # legacy id: children tagged `gpt2` hang under openai-community/gpt2, no stub left
    assert q.get_model(mini_store, "gpt2") is None
    assert sum(q.descendant_counts(mini_store, "openai-community/gpt2").values()) > 0
    assert q.family_size(mini_store, "mistralai/Mistral-7B-v0.1") >= len(desc)
    assert q.ancestors(mini_store, "no/such-model").empty
    top = q.top_base_models(mini_store, 5)
    assert list(top.columns[:2]) == ["id", "total"] and top["total"].is_monotonic_decreasing
    edges = q.derivative_edges(mini_store)
    assert set(edges["relation"]) <= {"finetune", "adapter", "quantized", "merge", "unknown"}


def test_second_run_is_incremental_and_idempotent(mini_graph_copy):
    before = content_counts(mini_graph_copy)
    report = ingest(SnapshotSource(MINI_SNAPSHOT), root=mini_graph_copy)  # watermark: no-op
    assert report.mode == "incremental" and sum(report.loaded.values()) == 0
    report = ingest(SnapshotSource(MINI_SNAPSHOT), root=mini_graph_copy, full=True)
    assert report.loaded["model"] == 488
    assert content_counts(mini_graph_copy) == before


def test_fake_hub_end_to_end_with_faults(tmp_path):
    models = load_fixture("models")
    with FakeHub(models=models + BROKEN_ITEMS, max_page_size=50) as hub:
        hub.add_fault(status=429, retry_after="2", nth=2, path="/api/models")
        hub.add_fault(status=503, nth=4, times=2, path="/api/models")
        waits: list[float] = []
        source = LiveHubSource(HubSource(endpoint=hub.url, page_size=50, sleep=waits.append),
                               kinds=("model", "dataset"))
        report = ingest(source, root=tmp_path)
    assert report.loaded["model"] == len({m["id"] for m in models})
    assert sum(report.rejects.values()) >= len(BROKEN_ITEMS) - 1
    assert 2.0 in waits  # Retry-After obeyed
    c = counts(tmp_path)
    assert c["nodes"]["Model"] - c["nodes"]["Model (stub)"] == report.loaded["model"]


def test_cli_run_and_status_json(tmp_path):
    proc = cli("run", "--snapshot", str(MINI_SNAPSHOT), "--limit", "50", db=tmp_path)
    assert "rejected" in proc.stdout and "nodes:" in proc.stdout
    status = json.loads(cli("status", "--json", db=tmp_path).stdout)
    assert status["nodes"]["Model"] >= 50 and status["runs"][0]["status"] == "ok"
    assert "FINETUNE_OF" in status["rels"]


def test_cli_errors_are_clear(tmp_path):
    proc = cli("status", db=tmp_path / "empty", check=False)
    assert proc.returncode != 0 and "no graph yet" in proc.stderr
    proc = cli("run", "--snapshot", str(tmp_path / "nope"), db=tmp_path, check=False)
    assert proc.returncode != 0 and "not found" in proc.stderr


def _spawn_ingest(db: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "HUBATLAS_DB": str(db)}
    env.pop("NEO4J_URI", None)
    return subprocess.Popen([sys.executable, "-m", "ingest", *_job_args(("run", *args))], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("phase", ["incremental", "bulk"])
def test_killed_ingest_resumes_to_exact_counts(tmp_path, phase):
    args = ["--snapshot", str(MINI_SNAPSHOT), "--full", "--batch-size", "15"]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    if phase == "incremental":  # a first small load, so the next runs take the upsert path
        for db in (clean, killed):
            cli("run", "--snapshot", str(MINI_SNAPSHOT), "--limit", "60", db=db)
    cli("run", *args, db=clean)
    rng = random.Random(3)
    kills = 0
    for _ in range(4):  # kill -9 at random moments, then let the next attempt resume
        proc = _spawn_ingest(killed, *args)
        time.sleep(rng.uniform(1.0, 3.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    proc = cli("run", *args, db=killed)
    assert kills >= 1
    assert content_counts(killed) == content_counts(clean)
    gens = Generations(killed)
    assert gens.pending_staging() is None and gens.current_path() is not None


def test_second_ingest_fails_fast_while_one_runs(tmp_path):
    gens = Generations(tmp_path)
    with gens.writer_lock():
        proc = cli("run", "--snapshot", str(MINI_SNAPSHOT), db=tmp_path, check=False)
    assert proc.returncode != 0 and "another ingest" in proc.stderr


READER = textwrap.dedent("""
    import sys, time, json
    from graph.generations import Generations
    from graph.kuzu_store import KuzuStore
    root, seconds = sys.argv[1], float(sys.argv[2])
    gens = Generations(root)
    name, store, seen, queries = None, None, set(), 0
    end = time.time() + seconds
    while time.time() < end:
        current = gens.current_name()
        if current != name:            # a new generation was published: reopen
            if store is not None:
                store.close()
            store, name = KuzuStore(gens.current_path(), read_only=True, buffer_pool_mb=128), current
        n = store.rows("MATCH (m:Model) RETURN count(m) AS n")[0]["n"]
        seen.add(n)
        queries += 1
    print(json.dumps({"seen": sorted(seen), "queries": queries}))
""")


def test_dashboard_reader_and_cron_writer_in_two_processes(tmp_path):
    cli("run", "--snapshot", str(MINI_SNAPSHOT), "--limit", "60", db=tmp_path)
    first = counts(tmp_path)["nodes"]["Model"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    reader = subprocess.Popen([sys.executable, "-c", READER, str(tmp_path), "30"], cwd=REPO,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    cli("run", "--snapshot", str(MINI_SNAPSHOT), "--full", db=tmp_path)   # the cron job
    cli("run", "--snapshot", str(MINI_SNAPSHOT), "--full", db=tmp_path)   # and the next one
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    result = json.loads(out)
    final = counts(tmp_path)["nodes"]["Model"]
    assert result["queries"] > 10
    assert first in result["seen"] and final in result["seen"]
    assert set(result["seen"]) <= {first, final}  # never a half-written graph


@pytest.mark.parametrize("since", ["2024-06-01"])
def test_since_filters_by_date(tmp_path, since):
    report = ingest(SnapshotSource(MINI_SNAPSHOT), root=tmp_path,
                    since=datetime.fromisoformat(since).replace(tzinfo=timezone.utc))
    assert report.skipped["model:older_than_since"] > 0
    store = open_store(read_only=True, root=tmp_path)
    df = store.frame("MATCH (m:Model) WHERE m.stub = false "
                     "RETURN m.lastModified AS modified, m.createdAt AS created")
    store.close()
    newest = df["modified"].fillna(df["created"])  # `since` reads lastModified, else createdAt
    assert len(df) > 0 and (newest > datetime(2024, 6, 1)).all()
