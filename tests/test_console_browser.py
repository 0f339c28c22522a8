"""The real console page in headless Chromium against the app server (`python app.py`), attacked.

The server runs with canary secrets in its environment. The query is typed into the page's
text area and Run is clicked, as a user does. Every example of the issue and two inputs of
every hostile family end in an error box and no result table; no canary ever appears on the
page or in the server's log; while a console query runs, another browser session loads a
page and the server's health check answers; afterwards the graph still opens and
`python -m ingest status` works.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from bench.pages import (
    CLICK_RUN_JS,
    Chromium,
    PageSpec,
    load_page,
    probe,
    streamlit_server,
)
from tests.test_console_cli import SELECTION
from tests.test_console_sandbox import fill

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "_artifacts"
CANARIES = {"HF_TOKEN": "hf_CANARYbrowserTOKEN98765", "NEO4J_PASSWORD": "CANARY-browser-pw",
            "HUBATLAS_TEST_SECRET": "CANARY-browser-secret"}
CONSOLE = PageSpec("console", "/console", title="Cypher console")

#: focuses the query text area and selects its text (typing then replaces it)
FOCUS_QUERY_JS = r"""
(() => {
  const t = document.querySelector('textarea');
  if (!t) return false;
  t.focus();
  t.select();
  return document.activeElement === t;
})()
"""

OUTCOME_JS = r"""
(() => {
  const q = (s) => [...document.querySelectorAll(s)].map(e => e.innerText);
  return {
    errors: q('[data-testid="stAlertContentError"]'),
    warnings: q('[data-testid="stAlertContentWarning"]'),
    success: q('[data-testid="stAlertContentSuccess"]'),
    tables: document.querySelectorAll('[data-testid="stDataFrame"]').length,
    text: document.body.innerText,
  };
})()
"""


@pytest.fixture(scope="module")
def served(mini_graph_root, tmp_path_factory, chromium_binary):
    db = tmp_path_factory.mktemp("console-browser") / "graph"
    shutil.copytree(mini_graph_root, db)
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "console_streamlit.log"
    with streamlit_server(db, log=log, extra_env={**CANARIES, "HUBATLAS_WARM_SEARCH": "0"}
                          ) as url:
        yield url, db, log


@pytest.fixture(scope="module")
def browser(chromium_binary):
    with Chromium(chromium_binary, width=1400, height=1600) as b:
        yield b


def run_in_console(browser: Chromium, url: str, query: str, timeout: float = 60) -> dict:
    """Open the console, type `query`, click Run; the page's outcome once it settled."""
    seconds, _ = load_page(browser, url, CONSOLE, timeout=60)
    assert seconds is not None, "the console page did not render"
    assert browser.evaluate(FOCUS_QUERY_JS)
    browser.call("Input.insertText", text=query)  # real input events, like typing
    for kind in ("keyDown", "keyUp"):  # Ctrl+Enter commits the text area
        browser.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter",
                     windowsVirtualKeyCode=13, modifiers=2)
    _wait_idle(browser)
    assert browser.evaluate(CLICK_RUN_JS)
    deadline = time.monotonic() + timeout
    settled = 0
    while time.monotonic() < deadline:
        time.sleep(0.2)
        p = probe(browser)
        out = browser.evaluate(OUTCOME_JS)
        done = out["errors"] or out["warnings"] or out["success"]
        if p.get("scriptRunning") == "notRunning" and not p.get("running") and done:
            settled += 1
            if settled >= 2:
                return out
        else:
            settled = 0
    raise AssertionError(f"no outcome in {timeout} s: {browser.evaluate(OUTCOME_JS)}")


def _wait_idle(browser: Chromium, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    time.sleep(0.3)
    while time.monotonic() < deadline:
        p = probe(browser)
        if p.get("scriptRunning") == "notRunning" and not p.get("running"):
            return
        time.sleep(0.1)


def _no_canary(text: str) -> None:
    for value in CANARIES.values():
        assert value not in text


def test_a_read_answers_with_a_table(served, browser):
    url, _, _ = served
    out = run_in_console(browser, url, "MATCH (m:Model) RETURN m.id AS id, m.likes AS likes "
                                       "ORDER BY likes DESC LIMIT 5")
    assert out["success"] and "5 rows" in out["success"][0], out
    assert out["tables"] >= 1 and not out["errors"]


@pytest.mark.parametrize("family,name,query", SELECTION,
                         ids=[f"{f}:{n}" for f, n, _ in SELECTION])
def test_hostile_input_on_the_page(served, browser, family, name, query, tmp_path):
    url, db, _ = served
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    live = next(db.glob("gen-*/graph.kuzu"))
    text = fill(query, ppid=_server_pid(url), out=out_dir, graph=live)[:10_000]
    out = run_in_console(browser, url, text)
    assert out["errors"] or out["warnings"], out
    assert not out["success"], f"{name}: the page showed a result: {out['success']}"
    _no_canary(out["text"])
    assert not list(out_dir.iterdir())
    shot = ARTIFACTS / f"console_{family.replace(' ', '_')}.png"
    if not shot.exists():
        browser.screenshot(shot)


@pytest.fixture(scope="module")
def patient_app(mini_graph_root, tmp_path_factory, chromium_binary):
    """A second server whose console stops queries after 45 s (HUBATLAS_CONSOLE_TIMEOUT_S),
    so a console query surely outlasts another session's page load on a loaded machine (the
    page loads ~10 s after the query starts; the test fails, never passes, if it does not)."""
    db = tmp_path_factory.mktemp("console-patient") / "graph"
    shutil.copytree(mini_graph_root, db)
    with streamlit_server(db, extra_env={"HUBATLAS_WARM_SEARCH": "0",
                                         "HUBATLAS_CONSOLE_TIMEOUT_S": "45"}) as url:
        yield url


def test_other_sessions_do_not_notice_a_running_console_query(patient_app, chromium_binary):
    """A console query that runs until it is killed in one browser; meanwhile a second
    browser loads the overview page and the health check answers, before the console
    query ends; then the console answers again."""
    url = patient_app
    slow = ("UNWIND range(1, 100000) AS a UNWIND range(1, 1000000) AS b WITH a, b "
            "WHERE a + b = -1 RETURN count(*) AS n")  # 1e11 rows: stopped at 45 s
    result: dict = {}
    overview = PageSpec("overview", "/", plotly=1, title="Hub Atlas")
    with Chromium(chromium_binary, width=1400, height=1600) as console, \
            Chromium(chromium_binary, width=1400, height=1600) as other:
        assert load_page(other, url, overview, timeout=120)[0] is not None  # warm its caches

        def console_session() -> None:
            try:
                result["out"] = run_in_console(console, url, slow, timeout=200)
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                result["error"] = e
            result["ended"] = time.monotonic()

        worker = threading.Thread(target=console_session)
        worker.start()
        time.sleep(5.0)  # the query is running in its worker now
        seconds, p = load_page(other, url, overview, timeout=120)
        assert seconds is not None and not p.get("exceptions"), p
        with urllib.request.urlopen(url + "/_stcore/health", timeout=5) as r:
            assert r.read().decode().strip() == "ok"
        served_at = time.monotonic()
        worker.join(300)
        assert "error" not in result, result["error"]
        assert result["ended"] > served_at, "the console query ended before the other " \
                                            "session was served"
        assert any("stopped" in e for e in result["out"]["errors"]), result
        out = run_in_console(console, url, "RETURN 1 AS one")
        assert out["success"], out


def test_server_log_holds_no_secret_and_graph_still_works(served):
    url, db, log = served
    with urllib.request.urlopen(url + "/_stcore/health", timeout=5) as r:
        assert r.read().decode().strip() == "ok"
    _no_canary(log.read_text(errors="replace"))
    assert sorted(p.name for p in next(db.glob("gen-*")).iterdir() if p.name != "results") == [
        "graph.kuzu", "graph.kuzu.engine.json"]  # the graph and its engine marker, nothing else
    env = {k: v for k, v in os.environ.items() if k != "NEO4J_URI"}
    status = subprocess.run([sys.executable, "-m", "ingest", "status"], cwd=REPO,
                            env={**env, "HUBATLAS_DB": str(db)}, capture_output=True, text=True,
                            timeout=120)
    assert status.returncode == 0, status.stderr


def _server_pid(url: str) -> int:
    """The pid of the streamlit process listening on `url`'s port (the workers' parent),
    so a LOAD FROM can aim at its /proc/<pid>/environ, which holds the canaries."""
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in b" ".join(cmd) and port.encode() in cmd:
            return int(proc.name)
    return os.getpid()
