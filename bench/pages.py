"""Time to a fully rendered page, per page, in headless Chromium against the app server.

    python -m bench.pages [--db /tmp/dbfull] [--runs 2] [--pages overview,lineage-largest,...]

Builds the full graph first when --db holds none (from ../shared/data). Each page is opened
in a fresh tab; "rendered" means the Streamlit app has stopped running, shows no exception,
spinner or skeleton, and its charts / graph / tables are drawn (plotly SVG, the lineage
graph's canvas, data grids), stable for two polls. Run 1 is cold (empty caches: the store
opens, the id index builds); later runs hit the caches. Run it under
`flock /tmp/hubatlas-heavy.lock` on shared machines.

Chromium is driven through the DevTools protocol over a websocket (no Selenium/Playwright);
the same helpers serve tests/test_browser.py.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable",
                       "chrome", "headless_shell")


def find_chromium() -> str | None:
    env = os.environ.get("HUBATLAS_CHROMIUM")
    if env and Path(env).exists():
        return env
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - localhost only
        return r.read().decode()


# -- the app server -----------------------------------------------------------------------
@contextlib.contextmanager
def streamlit_server(db: Path | str, *, port: int | None = None, log: Path | None = None,
                     startup_timeout: float = 60.0, extra_env: dict | None = None
                     ) -> Iterator[str]:
    """The app as `make app` serves it (`python app.py`: Streamlit with the pages' imports
    done first) on 127.0.0.1 (headless) over the graph folder `db`; yields its base URL and
    stops it afterwards."""
    port = port or free_port()
    env = {**os.environ, "HUBATLAS_DB": str(db), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    env.pop("NEO4J_URI", None)
    cmd = [sys.executable, str(REPO / "app.py"),
           "--server.headless", "true", "--server.address", "127.0.0.1",
           "--server.port", str(port), "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none", "--server.runOnSave", "false"]
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode} (log: {log})")
            try:
                if _get(url + "/_stcore/health", 1.0).strip() == "ok":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not come up on {url} (log: {log})")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if log:
            out.close()


# -- Chromium over the DevTools protocol ----------------------------------------------------
class CDPError(RuntimeError):
    pass


class Chromium:
    """A headless Chromium and one page target, driven over the DevTools websocket."""

    def __init__(self, binary: str, *, width: int = 1400, height: int = 1000):
        from websockets.sync.client import connect

        self._profile = tempfile.mkdtemp(prefix="hubatlas-chromium-")
        args = [binary, "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--disable-background-networking",
                "--disable-component-update", "--disable-default-apps", "--disable-sync",
                "--disable-extensions", "--no-first-run", "--no-default-browser-check",
                "--metrics-recording-only", "--mute-audio", "--hide-scrollbars",
                f"--window-size={width},{height}", "--remote-debugging-port=0",
                "--remote-allow-origins=*", f"--user-data-dir={self._profile}", "about:blank"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise CDPError("chromium did not start (no DevToolsActivePort)")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(_get(f"http://127.0.0.1:{port}/json/list"))
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        self.ws.__enter__()  # (websockets 15+ warns unless used as a context manager)
        self._id = 0
        self.console_errors: list[str] = []
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def call(self, method: str, timeout: float = 60.0, **params: Any) -> dict:
        self._id += 1
        msg_id = self._id
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError(f"{method}: no answer in {timeout} s")
            msg = json.loads(self.ws.recv(timeout=left))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise CDPError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if msg.get("method") == "Runtime.exceptionThrown":
                details = msg["params"]["exceptionDetails"]
                self.console_errors.append(
                    details.get("exception", {}).get("description") or details.get("text", ""))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CDPError("evaluate failed: " + str(details.get("exception", {}).get(
                "description") or details.get("text")))
        return result.get("result", {}).get("value")

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = self.call("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics.get("contentSize")
            height = min(int(size["height"]), 4000)
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": int(size["width"]), "height": height,
                                "scale": 1})
        data = self.call("Page.captureScreenshot", **params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- what "rendered" means -----------------------------------------------------------------
#: one DOM probe: Streamlit's own test ids, plotly's SVG, canvases (the lineage graph, data
#: grids), including inside shadow roots (custom components v2 may use one)
PROBE_JS = r"""
(() => {
  const all = (sel) => {
    const out = [];
    const walk = (root) => {
      root.querySelectorAll(sel).forEach(e => out.push(e));
      root.querySelectorAll('*').forEach(e => { if (e.shadowRoot) walk(e.shadowRoot); });
    };
    walk(document);
    return out;
  };
  const visible = (e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const app = document.querySelector('[data-testid="stApp"]');
  const main = document.querySelector('[data-testid="stMain"]') || document.body;
  const status = document.querySelector('[data-testid="stStatusWidget"]');
  const runningText = status ? status.innerText : '';
  const graph = all('canvas').filter(c => !c.closest('[data-testid="stDataFrame"]')
                                       && !c.closest('[data-testid="stDataFrameResizable"]'));
  return {
    app: !!app,
    scriptRunning: app ? app.getAttribute('data-test-script-state') : null,
    running: /running|connecting/i.test(runningText),
    exceptions: all('[data-testid="stException"]').length,
    errors: all('[data-testid="stAlertContentError"]').map(e => e.innerText.slice(0, 200)),
    spinners: all('[data-testid="stSpinner"]').filter(visible).length,
    skeletons: all('[data-testid="stSkeleton"]').filter(visible).length,
    plotly: all('.js-plotly-plot').filter(visible).length,
    plotlyTraces: all('.js-plotly-plot .trace, .js-plotly-plot .slice').length,
    graphCanvases: graph.filter(visible).length,
    graphPixels: graph.filter(visible).map(c => c.width * c.height).reduce((a, b) => a + b, 0),
    dataframes: all('[data-testid="stDataFrame"]').filter(visible).length,
    iframes: all('iframe').length,
    title: (document.querySelector('h1') || {}).innerText || '',
    textLength: (main.innerText || '').length,
  };
})()
"""

#: JS that clicks the console's Run button (the console page shows no table until then)
CLICK_RUN_JS = r"""
(() => {
  const b = [...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Run');
  if (!b) return false;
  b.click();
  return true;
})()
"""


@dataclass
class PageSpec:
    name: str
    path: str  # URL path + query
    plotly: int = 0  # at least this many plotly charts
    graph: bool = False  # the lineage graph canvas
    dataframes: int = 0
    click_run: bool = False
    title: str = ""  # expected start of the page's h1
    extra: dict = field(default_factory=dict)


def probe(browser: Chromium) -> dict:
    try:
        return browser.evaluate(PROBE_JS) or {}
    except CDPError as e:  # the document is being replaced (navigation)
        return {"probe_error": str(e)[:200]}


def _satisfied(p: dict, spec: PageSpec) -> bool:
    return (p.get("app") and p.get("scriptRunning") == "notRunning" and not p.get("running")
            and not p.get("spinners") and not p.get("skeletons")
            and p.get("plotly", 0) >= spec.plotly and p.get("dataframes", 0) >= spec.dataframes
            and (not spec.graph or p.get("graphCanvases", 0) >= 1)
            and (not spec.title or p.get("title", "").startswith(spec.title)))


def load_page(browser: Chromium, base_url: str, spec: PageSpec, *, timeout: float = 60.0,
              poll: float = 0.1) -> tuple[float, dict]:
    """Open `spec` and wait until it is fully rendered (or shows an exception, or times
    out). Returns (seconds, last probe); seconds is None on timeout."""
    browser.navigate("about:blank")
    t0 = time.perf_counter()
    browser.navigate(base_url + spec.path)
    clicked = not spec.click_run
    last, stable = None, 0
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        p = probe(browser)
        if p.get("exceptions"):
            return time.perf_counter() - t0, p
        if not clicked and p.get("scriptRunning") == "notRunning" and p.get("title"):
            clicked = bool(browser.evaluate(CLICK_RUN_JS))
            time.sleep(poll)
            continue
        if clicked and _satisfied(p, spec):
            key = {k: p[k] for k in ("plotly", "graphCanvases", "dataframes", "textLength")}
            stable = stable + 1 if key == last else 0
            last = key
            if stable >= 2:  # unchanged over two more polls
                return time.perf_counter() - t0 - 2 * poll, p
        time.sleep(poll)
    return None, probe(browser)


def page_specs(largest_family: str, *, small_model: str | None = None,
               second_family: str | None = None, views: bool = False) -> list[PageSpec]:
    """The pages to open: every registered page; the lineage page for the largest family.
    views=True adds the licence audit, publishers, compare and trends pages (their own
    browser test is tests/test_views_browser.py)."""
    specs = [PageSpec("overview", "/", plotly=3, title="Hub Atlas")]
    specs.append(PageSpec("lineage (largest family)", f"/lineage?model={largest_family}",
                          graph=True, title="Lineage", extra={"model": largest_family}))
    if second_family:
        specs.append(PageSpec("lineage (2nd family)", f"/lineage?model={second_family}",
                              graph=True, title="Lineage", extra={"model": second_family}))
    if small_model:
        specs.append(PageSpec("lineage (small)", f"/lineage?model={small_model}", graph=True,
                              title="Lineage", extra={"model": small_model}))
    specs.append(PageSpec("lineage (picker)", "/lineage", title="Lineage"))
    specs.append(PageSpec("console (run example)", "/console", dataframes=1, click_run=True,
                          title="Cypher console"))
    other = second_family or small_model or largest_family
    pages = REPO / "app_pages"
    if views and (pages / "licences.py").exists():
        specs.append(PageSpec("licence audit", "/licences", dataframes=2, title="Licence audit"))
    if views and (pages / "publishers.py").exists() and "/" in largest_family:
        specs.append(PageSpec("publishers", f"/publishers?author={largest_family.split('/')[0]}",
                              dataframes=1, title="Publishers"))
    if views and (pages / "compare.py").exists() and other != largest_family:
        specs.append(PageSpec("compare", f"/compare?models={largest_family},{other}", plotly=3,
                              dataframes=1, title="Compare"))
    if views and (pages / "trends.py").exists():
        specs.append(PageSpec("trends", f"/trends?model={largest_family}", plotly=1,
                              title="Trends"))
    if (REPO / "app_pages" / "forecasts.py").exists():
        specs.append(PageSpec("forecasts", "/forecasts"))
    if (REPO / "app_pages" / "search.py").exists():
        specs.append(PageSpec("search (query)", "/search?q=sentiment+analysis+for+tweets",
                              dataframes=1, title="Search"))
    return specs


# -- the bench ------------------------------------------------------------------------------
def ensure_full_graph(db: Path) -> None:
    from graph.generations import Generations

    if Generations(db).current_path() is not None:
        return
    shared = REPO.parent / "shared" / "data"
    print(f"no graph in {db}: building it from {shared} (~1 min)…", flush=True)
    subprocess.run([sys.executable, "-m", "ingest", "run", "--snapshot", str(shared / "hub-2024-07"),
                    "--snapshot", str(shared / "trees-2025")], cwd=REPO, check=True,
                   env={**os.environ, "HUBATLAS_DB": str(db)})


def _families(db: Path) -> tuple[str, str, str]:
    from graph import queries as q
    from graph.store import open_store

    store = open_store(read_only=True, root=db)
    try:
        top = q.top_base_models(store, 2)
        small = store.rows(f"MATCH (c:Model)-[:{q.LINEAGE_TYPES}]->(p:Model) "
                           "WITH p, count(*) AS n WHERE n = 3 RETURN p.id AS id LIMIT 1")
        return top["id"].iloc[0], top["id"].iloc[1], (small[0]["id"] if small else top["id"].iloc[1])
    finally:
        store.close()


def run_bench(db: Path, runs: int, only: set[str] | None, shots: Path | None,
              timeout: float) -> list[dict]:
    binary = find_chromium()
    if binary is None:
        raise SystemExit("no chromium found (apt-get install -y chromium)")
    largest, second, small = _families(db)
    specs = [s for s in page_specs(largest, small_model=small, second_family=second, views=True)
             if not only or any(o in s.name for o in only)]
    log = Path(tempfile.gettempdir()) / "hubatlas-bench-streamlit.log"
    rows = []
    with streamlit_server(db, log=log) as url, Chromium(binary) as browser:
        # page by page (cold, then warm visits), so one page's background work (e.g. an
        # index another page builds) does not slow the next page's warm numbers
        for spec in specs:
            for run in range(1, runs + 1):
                seconds, p = load_page(browser, url, spec, timeout=timeout)
                status = ("exception" if p.get("exceptions") else
                          "timeout" if seconds is None else "ok")
                rows.append({"page": spec.name, "run": run, "seconds": seconds, "status": status,
                             "plotly": p.get("plotly"), "graph": p.get("graphCanvases"),
                             "tables": p.get("dataframes")})
                print(f"  run {run} {spec.name:<26} "
                      f"{'—' if seconds is None else f'{seconds:6.2f} s'}  {status}", flush=True)
                if shots and run == runs:
                    slug = "".join(c if c.isalnum() else "_" for c in spec.name).strip("_")
                    browser.screenshot(shots / f"bench_{slug}.png")
    return rows


def print_table(rows: list[dict], goal: float = 3.0) -> None:
    pages = list(dict.fromkeys(r["page"] for r in rows))
    runs = sorted({r["run"] for r in rows})
    head = f"{'page':<28}" + "".join(f"{'run ' + str(r) + (' (cold)' if r == 1 else ''):>14}"
                                     for r in runs) + f"{'goal < ' + str(goal) + ' s':>14}"
    print(head)
    print("-" * len(head))
    for page in pages:
        cells, ok = [], True
        for run in runs:
            r = next(x for x in rows if x["page"] == page and x["run"] == run)
            if r["seconds"] is None or r["status"] != "ok":
                cells.append(f"{r['status']:>14}")
                ok = False
            else:
                cells.append(f"{r['seconds']:>12.2f} s")
                # the goal holds for the first request after a restart too (run 1)
                ok = ok and r["seconds"] < goal
        verdict = ("MISSED" if not ok else "ok" if len(runs) > 1 else "ok (1 run)")
        print(f"{page:<28}" + "".join(cells) + f"{verdict:>14}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, default=Path(os.environ.get("HUBATLAS_DB", "/tmp/dbfull")),
                    help="graph folder (HUBATLAS_DB layout); built from ../shared/data if empty")
    ap.add_argument("--runs", type=int, default=3, help="visits per page (run 1 is cold)")
    ap.add_argument("--pages", default="", help="comma-separated substrings of page names")
    ap.add_argument("--screenshots", type=Path, default=REPO / "bench" / "out",
                    help="folder for the last run's screenshots ('' for none)")
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds per page")
    args = ap.parse_args(argv)
    ensure_full_graph(args.db)
    only = {p.strip() for p in args.pages.split(",") if p.strip()} or None
    shots = args.screenshots if str(args.screenshots) else None
    print(f"graph: {args.db}; chromium: {find_chromium()}")
    rows = run_bench(args.db, args.runs, only, shots, args.timeout)
    print()
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
