"""analytics/pipeline.py: the scheduled job refreshes every derived result with each ingest, on
the real engine, and one failing result never stops the job or the publish."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analytics import pipeline as P
from analytics.results import Results, find_ready
from graph.generations import Generations
from graph.store import current_generation, open_store
from ingest.run import ingest
from ingest.sources import SnapshotSource
from tests.conftest import MINI_SNAPSHOT, REPO, job_without_search


@pytest.fixture
def env_root(mini_graph_copy, monkeypatch):
    monkeypatch.setenv("HUBATLAS_DB", str(mini_graph_copy))
    return mini_graph_copy


def test_first_load_refreshes_every_result(mini_graph_root, monkeypatch):
    monkeypatch.setenv("HUBATLAS_DB", str(mini_graph_root))
    gen = current_generation()
    results = Results(gen)
    status = results.status()
    want = {s.name for s in P.STEPS} - {P.SEARCH}
    assert set(status) == want
    assert all(s.ok for s in status.values()), {n: s.error for n, s in status.items()}
    assert results.complete
    overview = results.load_object(P.OVERVIEW)
    assert overview.nodes["Model"] > 400
    assert len(results.load_frame(P.ID_INDEX)) == overview.nodes["Model"]
    assert results.load_json(P.ABOUT)["sources"] and not results.load_json(P.ABOUT)["sample"]


def test_growth_properties_are_queryable_in_cypher(mini_graph_root):
    """What the Forecasts page shows is what `MATCH (m:Model) WHERE m.forecast_12m …` finds."""
    from analytics.forecasts import ForecastTable

    results = Results(current_generation_of(mini_graph_root))
    table = ForecastTable.load(results.folder(P.FORECASTS))
    store = open_store(read_only=True, root=mini_graph_root)
    try:
        got = store.frame("MATCH (m:Model) WHERE m.forecast_method IS NOT NULL RETURN m.id AS id, "
                          "m.forecast_12m AS f12, m.forecast_12m_low AS lo, m.growth_fit_ok AS ok, "
                          "m.growth_mu AS mu, m.derivatives_observed AS n, "
                          "m.forecast_as_of AS as_of")
        big = store.rows("MATCH (m:Model) WHERE m.forecast_12m > 50 RETURN m.id AS id")
    finally:
        store.close()
    s = table.models.set_index("model")
    assert set(got["id"]) == set(s.index) and len(got) > 10
    for r in got.itertuples():
        assert math.isclose(r.f12, s.at[r.id, "forecast_12m"], rel_tol=1e-9)
        assert bool(r.ok) == bool(s.at[r.id, "growth_fit_ok"])
        assert r.n == s.at[r.id, "derivatives"]
        want_mu = s.at[r.id, "growth_mu"]
        assert (np.isnan(r.mu) and np.isnan(want_mu)) or math.isclose(r.mu, want_mu, rel_tol=1e-9)
    assert {r["id"] for r in big} == set(s.index[s["forecast_12m"] > 50])
    # each series ends with its last complete month (months count from the base's creation),
    # at most a month before the graph's observations end
    about = results.load_json(P.ABOUT)
    end = pd.Timestamp(about["observed_until"]).tz_localize(None)
    assert str(table.meta["as_of"])[:10] == about["observed_until"][:10]
    assert (got["as_of"] <= end).all() and (got["as_of"] > end - pd.Timedelta(days=32)).all()


def current_generation_of(root):
    from graph.store import Generation

    gens = Generations(root)
    return Generation("embedded", gens.current_name(), root / gens.current_name())


def _boom(store, results, memo):
    raise RuntimeError("this result is broken")


def test_a_failing_result_is_recorded_and_the_run_still_publishes(env_root):
    before = Generations(env_root).current_name()
    steps = (P.Step("broken", P.BEFORE_PUBLISH, _boom), P.Step("broken_files", P.AFTER_PUBLISH, _boom),
             *(s for s in P.STEPS if s.name in (P.OVERVIEW, P.ABOUT)))
    report = ingest(SnapshotSource(MINI_SNAPSHOT), root=env_root, limit=20, refresh=P.Refresh(steps))
    gen = current_generation()
    assert gen.name != before  # published
    status = Results(gen).status()
    assert not status["broken"].ok and "this result is broken" in status["broken"].error
    assert not status["broken_files"].ok
    assert status[P.OVERVIEW].ok and status[P.ABOUT].ok
    assert not Results(gen).complete  # so pruning keeps an older, complete generation
    assert [a["name"] for a in report.as_dict()["analytics"]] == \
        ["broken", P.ABOUT, P.OVERVIEW, "broken_files"]


def test_pages_fall_back_to_the_newest_generation_with_the_result(env_root):
    first = current_generation()
    # a new generation whose overview failed: readers keep the previous one's
    broken = (P.Step(P.OVERVIEW, P.BEFORE_PUBLISH, _boom),)
    ingest(SnapshotSource(MINI_SNAPSHOT), root=env_root, limit=10, refresh=P.Refresh(broken))
    second = current_generation()
    found = find_ready(P.OVERVIEW, second)
    assert found is not None and not found.current
    assert found.results.generation.name == first.name
    # a third generation without results: pruning keeps the newest complete one too
    ingest(SnapshotSource(MINI_SNAPSHOT), root=env_root, limit=10)
    third = current_generation()
    assert (env_root / first.name).exists() and (env_root / third.name).exists()
    found = find_ready(P.OVERVIEW, third)
    assert found is not None and found.results.generation.name == first.name
    # once the current generation's result is built, it is the one found
    P.build_now([P.OVERVIEW])
    found = find_ready(P.OVERVIEW, third)
    assert found.current and found.results.generation.name == third.name


def test_cli_status_and_refresh(env_root):
    env = {**os.environ, "HUBATLAS_DB": str(env_root)}
    run = subprocess.run([sys.executable, "-m", "analytics", "refresh", "--skip", P.SEARCH,
                          "--skip", P.FORECASTS], cwd=REPO, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "overview" in run.stdout and "FAILED" not in run.stdout
    st = subprocess.run([sys.executable, "-m", "analytics", "status", "--json"], cwd=REPO, env=env,
                        capture_output=True, text=True)
    assert st.returncode == 0, st.stderr
    out = json.loads(st.stdout)
    assert out["complete"] and out["results"][P.OVERVIEW]["ok"]


def test_cli_refresh_only_named_steps(env_root):
    env = {**os.environ, "HUBATLAS_DB": str(env_root)}

    def refresh(*args):
        return subprocess.run([sys.executable, "-m", "analytics", "refresh", *args], cwd=REPO,
                              env=env, capture_output=True, text=True)

    before = Results(current_generation()).status()
    run = refresh("--only", P.OVERVIEW, "--only", P.ID_INDEX)
    assert run.returncode == 0, run.stderr
    assert [line.split()[0] for line in run.stdout.splitlines()] == [P.OVERVIEW, P.ID_INDEX]
    after = Results(current_generation()).status()
    assert after[P.OVERVIEW].built_at > before[P.OVERVIEW].built_at
    assert after[P.ABOUT] == before[P.ABOUT]  # not rebuilt
    bad = refresh("--only", "nonsense")
    assert bad.returncode == 2 and "unknown step(s) nonsense" in bad.stderr
    graph_step = refresh("--only", P.LICENCE_VERDICTS)
    assert graph_step.returncode == 2 and "write(s) into the graph" in graph_step.stderr


def test_cli_status_reports_the_embedding_variant(env_root, tmp_path):
    """Status says which embedding variant this CPU uses (the cached measurement), without
    measuring one itself."""
    from analytics.embeddings import AUTO_CANDIDATES, _choice_key, cpu_signature

    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if k != "HUBATLAS_EMBED_VARIANT"}
    env.update(HUBATLAS_DB=str(env_root), HUBATLAS_CACHE_DIR=str(cache))

    def status(*args, **extra):
        run = subprocess.run([sys.executable, "-m", "analytics", "status", *args], cwd=REPO,
                             env={**env, **extra}, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return run.stdout

    assert "embedding variant: not measured on this CPU yet" in status()
    assert not cache.exists()  # status measured nothing
    assert json.loads(status("--json"))["embedding_variant"] is None
    rec = {"variant": "bf16", "signature": cpu_signature(), "rates": {"bf16": 300.0},
           "cosines": {"bf16": 0.99994}, "measured_at": "2026-01-01T00:00:00"}
    cache.mkdir()
    (cache / "embed-variant.json").write_text(json.dumps({_choice_key(AUTO_CANDIDATES): rec}))
    # a choice cached before batch sizes were measured is measured again at the next build
    assert "embedding variant: not measured on this CPU yet" in status()
    rec.update(batch_size=64, batch_rates={"32": 310.0, "64": 320.0, "128": 300.0})
    (cache / "embed-variant.json").write_text(json.dumps({_choice_key(AUTO_CANDIDATES): rec}))
    out = status()
    assert "embedding variant bf16, batch 64 (cached choice on" in out
    assert "bf16 300/cpu-s" in out and "64: 320/cpu-s" in out
    assert json.loads(status("--json"))["embedding_variant"]["batch_size"] == 64
    assert "embedding variant fp32 (set by HUBATLAS_EMBED_VARIANT)" in status(
        HUBATLAS_EMBED_VARIANT="fp32")


def test_status_describes_what_the_search_step_embedded():
    from analytics.__main__ import _embedding_detail

    detail = {"models": 761188, "embedded": 761188, "reused": 0, "variant": "bf16",
              "texts_per_s": 301.4}
    assert _embedding_detail(detail) == "  (bf16: 761,188 embedded at 301 texts/s, 0 reused)"
    assert _embedding_detail({**detail, "texts_per_s": float("nan"), "embedded": 0,
                              "reused": 761188}) == "  (bf16: 0 embedded, 761,188 reused)"
    assert _embedding_detail({}) == ""


def test_cli_status_without_a_graph(tmp_path):
    env = {**os.environ, "HUBATLAS_DB": str(tmp_path / "none")}
    st = subprocess.run([sys.executable, "-m", "analytics", "status"], cwd=REPO, env=env,
                        capture_output=True, text=True)
    assert st.returncode == 1 and "no graph yet" in st.stderr


def test_ingest_cli_runs_the_job(tmp_path):
    env = {**os.environ, "HUBATLAS_DB": str(tmp_path / "g")}
    run = subprocess.run([sys.executable, "-m", "ingest", "run", "--snapshot", str(MINI_SNAPSHOT),
                          "--limit", "30", "--skip", P.SEARCH], cwd=REPO, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "derived overview" in run.stdout and "derived growth_properties" in run.stdout
    env_gen = subprocess.run([sys.executable, "-m", "analytics", "status", "--json"], cwd=REPO,
                             env=env, capture_output=True, text=True)
    assert set(json.loads(env_gen.stdout)["results"]) == {s.name for s in P.STEPS} - {P.SEARCH}
    assert job_without_search().steps  # the fixture's job is the same minus search
