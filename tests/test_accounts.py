"""Account types from the Hub (`ingest.accounts`): asked of the fake Hub over real HTTP with
the real huggingface_hub client, a bounded batch per run, most downloaded first, remembered in
the graph; unknown for snapshots and when the Hub does not answer; and an incremental run
after types became known ends as a clean load that asked the same Hub."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from graph import queries as q
from graph.schema import ACCOUNT_UNKNOWN
from graph.store import open_store
from ingest.accounts import AccountLookup
from ingest.hub import HubSource
from ingest.run import ingest
from ingest.sources import SnapshotSource
from tests.fakehub import FakeHub
from tests.test_ingest import cli, content_counts

#: namespace -> (downloads of its model, what the Hub says: org, user, or no page)
NAMESPACES = {"big-org": (9000, "org"), "big-user": (5000, "user"), "ghost": (3000, None),
              "mid-org": (1000, "org"), "small-user": (100, "user"), "tiny-org": (10, "org")}
HUB_ACCOUNTS = {n: kind for n, (_, kind) in NAMESPACES.items() if kind}


def _write(folder: Path, models: list[dict], datasets: list[dict] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "models.jsonl").write_text("".join(json.dumps(m) + "\n" for m in models))
    (folder / "datasets.jsonl").write_text("".join(json.dumps(d) + "\n" for d in datasets))
    return folder


def _model(rid: str, downloads: int, *parents: str) -> dict:
    return {"id": rid, "author": rid.split("/")[0], "downloads": downloads, "likes": 1,
            "createdAt": "2024-05-01T00:00:00.000Z",
            "tags": ["transformers", *(f"base_model:{p}" for p in parents)]}


def _snapshot(tmp_path: Path) -> Path:
    models = [_model(f"{n}/model", d) for n, (d, _) in NAMESPACES.items()]
    models.append(_model("small-user/tune", 5, "big-org/model"))
    return _write(tmp_path / "snap", models, [{"id": "big-org/data", "author": "big-org",
                                               "downloads": 3}])


def _lookup(hub: FakeHub, limit: int, **kw) -> AccountLookup:
    return AccountLookup(HubSource(endpoint=hub.url, token=None, **kw), limit=limit)


def _types(root: Path) -> dict[str, tuple[str, bool]]:
    store = open_store(read_only=True, root=root)
    try:
        t = q.account_types(store)
    finally:
        store.close()
    return {a: (typ, bool(c)) for a, typ, c in zip(t["author"], t["account_type"], t["account_checked"])}


def test_snapshot_load_leaves_every_account_unknown(tmp_path):
    root = tmp_path / "graph"
    report = ingest(SnapshotSource(_snapshot(tmp_path)), root=root)
    assert report.accounts == {}  # nobody was asked
    assert _types(root) == {n: (ACCOUNT_UNKNOWN, False) for n in NAMESPACES}
    nodes = content_counts(root)["nodes"]
    assert nodes["Account"] == nodes["Account (unknown)"] == len(NAMESPACES)
    assert nodes["Account (organization)"] == nodes["Account (user)"] == 0


def test_bounded_batches_most_downloaded_first_and_continued_next_run(tmp_path):
    snap, root = _snapshot(tmp_path), tmp_path / "graph"
    ingest(SnapshotSource(snap), root=root)
    with FakeHub(accounts=HUB_ACCOUNTS) as hub:
        first = ingest(SnapshotSource(snap), root=root, accounts=_lookup(hub, 2))
        assert first.accounts["asked"] == 2 and first.accounts["remaining"] == 4
        assert len(hub.requests) == 3  # big-org: 1 request, big-user: 2
        got = _types(root)
        assert got["big-org"] == ("organization", True) and got["big-user"] == ("user", True)
        assert got["ghost"] == (ACCOUNT_UNKNOWN, False)
        hub.requests.clear()
        second = ingest(SnapshotSource(snap), root=root, accounts=_lookup(hub, 3))
        asked = [r.path.split("/")[3] for r in hub.requests]
        assert asked[0] == "ghost" and "big-org" not in asked  # the rest, each once
        assert second.accounts == {**second.accounts, "asked": 3, "organization": 1,
                                   "user": 1, "not_found": 1, "remaining": 1}
        got = _types(root)
        assert got["ghost"] == (ACCOUNT_UNKNOWN, True)  # no page on the Hub: stays unknown
        assert got["mid-org"] == ("organization", True)
        assert got["small-user"] == ("user", True) and got["tiny-org"] == (ACCOUNT_UNKNOWN, False)
        counts = content_counts(root)["nodes"]
        assert (counts["Account (organization)"], counts["Account (user)"],
                counts["Account (unknown)"]) == (2, 2, 2)


def test_unreachable_hub_leaves_types_unknown_and_the_run_ok(tmp_path):
    snap, root = _snapshot(tmp_path), tmp_path / "graph"
    with FakeHub() as hub:
        url = hub.url  # closed below: nothing listens there any more
    dead = AccountLookup(HubSource(endpoint=url, token=None, max_retries=1, sleep=lambda s: None),
                         limit=10)
    report = ingest(SnapshotSource(snap), root=root, accounts=dead)
    assert report.status == "ok" and report.accounts["asked"] == 0
    assert "ConnectError" in report.accounts["error"]
    assert report.accounts["remaining"] == len(NAMESPACES)
    assert set(_types(root).values()) == {(ACCOUNT_UNKNOWN, False)}
    # the Hub answers again in a later run: the lookups go on from where nothing was learnt
    with FakeHub(accounts=HUB_ACCOUNTS) as hub:
        hub.add_fault(status=503, nth=1, times=100, path="/api/users/ghost/overview")
        later = ingest(SnapshotSource(snap), root=root,
                       accounts=_lookup(hub, 10, max_retries=1, sleep=lambda s: None))
    assert later.status == "ok" and "503" in later.accounts["error"]
    assert later.accounts["asked"] == 2  # big-org, big-user; ghost's answer never came
    assert _types(root)["ghost"] == (ACCOUNT_UNKNOWN, False)  # asked again next run


def test_incremental_after_types_became_known_equals_a_clean_load(tmp_path):
    snap = _snapshot(tmp_path)
    inc, clean = tmp_path / "incremental", tmp_path / "clean"
    with FakeHub(accounts={**HUB_ACCOUNTS, "newcomer": "user"}) as hub:
        ingest(SnapshotSource(snap), root=inc, accounts=_lookup(hub, 3))
        # later records: a known organisation's new model, a namespace asked before that
        # arrives with another repo, a new namespace; in batches of two
        more = [_model("big-org/model-2", 7, "big-org/model"), _model("newcomer/x", 1),
                _model("big-user/other", 2, "mid-org/model"), _model("tiny-org/model", 11)]
        snap2 = _write(tmp_path / "snap2", more)
        report = ingest(SnapshotSource(snap, snap2), root=inc, full=True, batch_size=2,
                        accounts=_lookup(hub, 100))
        assert report.mode == "incremental" and report.accounts["asked"] == 4
        assert report.accounts["remaining"] == 0
        want = ingest(SnapshotSource(snap, snap2), root=clean, accounts=_lookup(hub, 100))
        assert want.mode == "bulk" and want.accounts["asked"] == len(NAMESPACES) + 1
    assert content_counts(inc) == content_counts(clean)
    got, expected = _types(inc), _types(clean)
    assert got == expected
    assert got["newcomer"] == ("user", True) and got["big-org"] == ("organization", True)
    assert got["ghost"] == (ACCOUNT_UNKNOWN, True)
    a, b = (open_store(read_only=True, root=r) for r in (inc, clean))
    try:
        pub = [s.frame("MATCH (a:Account)-[:PUBLISHED]->(r) RETURN a.id AS account, r.id AS repo "
                       "ORDER BY account, repo") for s in (a, b)]
        pd.testing.assert_frame_equal(*pub)
        assert len(pub[0]) == len(NAMESPACES) + 1 + 3 + 1  # + big-org/data, its dataset
        by_type = [q.publishers_by_account_type(s) for s in (a, b)]
        pd.testing.assert_frame_equal(*by_type)
    finally:
        a.close()
        b.close()


def test_cli_asks_the_endpoint_and_reports_it(tmp_path):
    snap, db = _snapshot(tmp_path), tmp_path / "graph"
    with FakeHub(accounts=HUB_ACCOUNTS) as hub:
        out = cli("run", "--snapshot", str(snap), "--no-analytics", "--json", db=db)
        assert json.loads(out.stdout)["accounts"] == {} and hub.requests == []
        out = cli("run", "--snapshot", str(snap), "--full", "--no-analytics", "--accounts", "4",
                  "--endpoint", hub.url, db=db)
        assert "account types: asked 4" in out.stdout and "2 still unknown" in out.stdout
    runs = json.loads(cli("status", "--json", db=db).stdout)
    assert runs["nodes"]["Account (organization)"] == 2 and runs["nodes"]["Account (user)"] == 1


CRASHER = """
import os, sys
from pathlib import Path
from ingest.accounts import AccountLookup
from ingest.hub import HubSource
from ingest.run import ingest
from ingest.sources import SnapshotSource
root, snapshot, endpoint, after = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])

class Crashing(HubSource):
    asked = 0

    def account_type(self, name):
        if Crashing.asked == after:
            os._exit(9)  # like kill -9, in the middle of the run's lookups
        Crashing.asked += 1
        return super().account_type(name)

lookup = AccountLookup(Crashing(endpoint=endpoint, token=None), limit=10, commit_every=2)
ingest(SnapshotSource(snapshot), root=root, full=True, accounts=lookup)
"""


def test_run_killed_during_lookups_resumes_and_keeps_what_was_committed(tmp_path):
    import os
    import subprocess
    import sys

    from graph.generations import Generations
    from tests.test_ingest import REPO

    snap, root, clean = _snapshot(tmp_path), tmp_path / "killed", tmp_path / "clean"
    ingest(SnapshotSource(snap), root=root)
    with FakeHub(accounts=HUB_ACCOUNTS) as hub:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("NEO4J_URI", None)
        proc = subprocess.run([sys.executable, "-c", CRASHER, str(root), str(snap), hub.url,
                               "5"], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 9, proc.stderr
        staging = Generations(root).pending_staging()
        assert staging is not None  # nothing published; the answers sit in the staging copy
        hub.requests.clear()
        report = ingest(SnapshotSource(snap), root=root, full=True, accounts=_lookup(hub, 10))
        assert report.resumed_from == report.read > 0  # every batch had committed: resumed
        # the four answers committed before the kill are not asked again; the fifth is
        assert report.accounts["asked"] == len(NAMESPACES) - 4
        assert report.accounts["remaining"] == 0
        ingest(SnapshotSource(snap), root=clean, accounts=_lookup(hub, 10))
    assert _types(root) == _types(clean)
    assert content_counts(root) == content_counts(clean)
