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
    assert rejects["model:tags:too_many(kept)"] == 1


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
    from pathlib import Path
    from graph.generations import Generations
    from graph.kuzu_store import KuzuStore
    root, stop = sys.argv[1], Path(sys.argv[2])
    gens = Generations(root)
    name, store, seen, queries = None, None, set(), 0
    end = time.time() + 600
    while time.time() < end:
        current = gens.current_name()
        if stop.exists() and current == name and queries > 10:
            break  # told to stop, and the live generation has been read
        if current != name:            # a new generation was published: reopen
            if store is not None:
                store.close()
            store, name = KuzuStore(gens.current_path(), read_only=True,
                                    buffer_pool_mb=128), current
        n = store.rows("MATCH (m:Model) RETURN count(m) AS n")[0]["n"]
        seen.add(n)
        queries += 1
    print(json.dumps({"seen": sorted(seen), "queries": queries}))
""")


def test_dashboard_reader_and_cron_writer_in_two_processes(tmp_path):
    cli("run", "--snapshot", str(MINI_SNAPSHOT), "--limit", "60", db=tmp_path)
    first = counts(tmp_path)["nodes"]["Model"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    stop = tmp_path / "stop-reading"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(tmp_path), str(stop)],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    time.sleep(2.0)
    cli("run", "--snapshot", str(MINI_SNAPSHOT), "--full", db=tmp_path)   # the cron job
    cli("run", "--snapshot", str(MINI_SNAPSHOT), "--full", db=tmp_path)   # and the next one
    stop.touch()  # the reader stops once it has read the generation live now
    out, err = reader.communicate(timeout=120)
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


CRASHER = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from ingest.run import ingest
    from ingest.sources import SnapshotSource
    root, snapshot, after = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])

    class Crashing(SnapshotSource):
        def iter_items(self, **kw):
            for n, item in enumerate(super().iter_items(**kw)):
                if n == after:
                    os._exit(9)  # like kill -9: no cleanup, no finally
                yield item

    ingest(Crashing(snapshot), root=root, full=True, batch_size=int(sys.argv[4]))
""")


@pytest.mark.parametrize("crash_after", [301])
def test_resumed_run_reports_the_whole_run(tmp_path, crash_after):
    """A run killed after some batches committed, then resumed: its report (loaded, read,
    skipped, rejects, lineage, relinked stubs) is the report of a run that was never killed."""
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for db in (clean, killed):
        cli("run", "--snapshot", str(MINI_SNAPSHOT), "--limit", "60", db=db)
    want = json.loads(cli("run", "--snapshot", str(MINI_SNAPSHOT), "--full", "--batch-size",
                          "25", "--json", db=clean).stdout)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("NEO4J_URI", None)
    proc = subprocess.run([sys.executable, "-c", CRASHER, str(killed), str(MINI_SNAPSHOT),
                           str(crash_after), "25"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr
    assert Generations(killed).pending_staging() is not None
    got = json.loads(cli("run", "--snapshot", str(MINI_SNAPSHOT), "--full", "--json",
                         db=killed).stdout)  # the default batch size: the run's own is kept
    assert got["run_id"] != want["run_id"] and got["resumed_from"] == crash_after // 25 * 25
    assert got["resumed_from"] > 0
    for key in ("read", "loaded", "skipped", "rejects", "lineage", "counts", "mode"):
        if key == "counts":  # the run bookkeeping differs: its own IngestRun node
            assert got[key]["nodes"] == want[key]["nodes"]
            continue
        assert got[key] == want[key], key
    assert want["loaded"]["relinked_stub_parents"] >= 0 and want["read"] > 400
    assert content_counts(killed) == content_counts(clean)


def test_status_says_what_is_wrong_with_a_damaged_or_foreign_graph(tmp_path):
    from graph.engine import engine

    kuzu = engine().module  # the engine in use (kuzu and ladybug cannot share one process)

    damaged, foreign = tmp_path / "damaged", tmp_path / "foreign"
    for root in (damaged, foreign):
        (root / "gen-x").mkdir(parents=True)
        (root / "CURRENT").write_text("gen-x")
    (damaged / "gen-x" / "graph.kuzu").write_bytes(random.Random(1).randbytes(200_000))
    db = kuzu.Database(str(foreign / "gen-x" / "graph.kuzu"))
    kuzu.Connection(db).execute("CREATE NODE TABLE Other(id INT64, PRIMARY KEY(id))")
    db.close()
    for root, words in ((damaged, "not a database of any known engine"),
                        (foreign, "not a Hub Atlas graph")):
        for args in (("status",), ("status", "--json")):
            proc = cli(*args, db=root, check=False)
            out = proc.stdout + proc.stderr
            assert proc.returncode == 1 and words in out, out
            assert "Traceback" not in out
        assert "error" in json.loads(cli("status", "--json", db=root, check=False).stdout)


# The driver retries an unreachable server for 30 s by default; the test only shortens that.
STATUS_FAST_RETRY = (
    "import sys; from graph.neo4j_store import Neo4jStore; "
    "Neo4jStore.connect.__func__.__kwdefaults__['max_retry_s'] = 1.0; "
    "from ingest.__main__ import cli; sys.argv = ['ingest', *sys.argv[1:]]; cli()")


@pytest.mark.parametrize("as_json", [False, True])
def test_status_with_neo4j_unreachable_is_a_clear_error(tmp_path, as_json):
    env = {**os.environ, "NEO4J_URI": "bolt://127.0.0.1:9", "NEO4J_PASSWORD": "canary-pw-123",
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", STATUS_FAST_RETRY, "status",
                           *(["--json"] if as_json else [])], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Neo4j is unreachable" in out and "Traceback" not in out
    assert "canary-pw-123" not in out
    if as_json:
        assert "unreachable" in json.loads(proc.stdout)["error"]


def test_endpoint_credentials_never_printed_or_stored(tmp_path, caplog):
    with FakeHub(max_page_size=50) as hub:
        secret_url = hub.url.replace("://", "://hubuser:canary-secret-42@")
        proc = cli("run", "--endpoint", secret_url, "--limit", "20", db=tmp_path)
        status = cli("status", db=tmp_path)
        for out in (proc.stdout, proc.stderr, status.stdout, status.stderr):
            assert "canary-secret-42" not in out
        assert "hub:http://***@127.0.0.1" in proc.stdout
        store = open_store(read_only=True, root=tmp_path)
        runs = q.ingest_runs(store)
        store.close()
        assert runs["source"].str.contains("canary-secret").sum() == 0
        assert runs["source"].iloc[0].startswith("hub:http://***@")
    # a failing endpoint: the error and every retry warning are redacted too
    source = LiveHubSource(HubSource(endpoint="http://hubuser:canary-secret-42@127.0.0.1:9",
                                     max_retries=1, sleep=lambda s: None), kinds=("model",))
    with pytest.raises(Exception) as err:
        ingest(source, root=tmp_path / "down")
    assert "canary-secret-42" not in str(err.value) and "***@127.0.0.1:9" in str(err.value)
    assert "canary-secret-42" not in caplog.text and repr(source.hub).count("***") == 1


def test_a_staging_copy_cut_short_by_a_kill_is_started_again(tmp_path):
    """kill -9 while the staging copy of the live graph is written leaves a file that cannot
    be opened: the next run must start again, not fail on it for good."""
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for db in (clean, killed):
        cli("run", "--snapshot", str(MINI_SNAPSHOT), "--limit", "60", db=db)
    live = Generations(killed).current_path()
    staging = killed / "staging-20990101T000000-cut"
    staging.mkdir()
    (staging / live.name).write_bytes(live.read_bytes()[: live.stat().st_size // 5])
    for db in (clean, killed):
        cli("run", "--snapshot", str(MINI_SNAPSHOT), "--full", db=db)
    assert content_counts(killed) == content_counts(clean)
    assert not staging.exists() and Generations(killed).pending_staging() is None
