"""Real browser: the licence audit, publishers, compare and trends pages in headless
Chromium against the app server (`python app.py`) over the mini graph (plus a synthetic second run and a model
whose id is Markdown, with the scheduled job's results refreshed for it), and the lineage
page's GraphML download actually downloaded.

Needs a Chromium binary (skipped when none is found); see tests/test_browser.py.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from bench.pages import Chromium, PageSpec, load_page, probe, streamlit_server
from graph.generations import Generations
from graph.kuzu_store import KuzuStore
from tests.test_export import check_graphml
from tests.test_trends import _later, add_run
from tests.test_views_pages import refresh_views

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent / "_artifacts"
PHI2, GPT2 = "microsoft/phi-2", "openai-community/gpt2"
POISON = "evil/![x](http://evil.example/x.png)"


@pytest.fixture(scope="module")
def app_url(mini_graph_root, tmp_path_factory, chromium_binary):
    db = tmp_path_factory.mktemp("views_browser") / "graph"
    shutil.copytree(mini_graph_root, db)
    store = KuzuStore(Generations(db).current_path(), read_only=False)
    try:
        store.write([("CREATE (:Model {id: $id, author: 'evil', license: 'mit', stub: false})",
                      {"id": POISON})])
        add_run(store, "synthetic-2", _later(30), {PHI2: (1_000_000, 3_400),
                                                   GPT2: (5_000_000, 2_100), POISON: (9, 0)})
        refresh_views(store)  # the job's results for the changed graph
    finally:
        store.close()
    ARTIFACTS.mkdir(exist_ok=True)
    with streamlit_server(db, log=ARTIFACTS / "streamlit_views.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser(chromium_binary, app_url):
    with Chromium(chromium_binary, width=1400, height=2200) as b:
        # A fresh server whose first request is a deep link (/licences) runs that file alone
        # as a legacy pages/ page, without app.py's navigation (a known issue of the app's
        # layout, reported); open the entry page first, as the app's own browser test does.
        load_page(b, app_url, PageSpec("overview", "/", title="Hub Atlas"), timeout=90)
        yield b


SPECS = [
    PageSpec("licence audit", "/licences", dataframes=2, title="Licence audit"),
    PageSpec("licence audit (model)", "/licences?model=BramVanroy/fietje-2-chat", dataframes=2,
             title="Licence audit"),
    PageSpec("publishers (index)", "/publishers", dataframes=1, title="Publishers"),
    PageSpec("publishers (meta-llama)", "/publishers?author=meta-llama", dataframes=1,
             title="Publishers", extra={"tab": "Derived by others", "plotly": 2}),
    PageSpec("lineage (timeline tab)", f"/lineage?model={PHI2}", graph=True, title="Lineage",
             extra={"tab": "Timeline", "plotly": 1}),
    PageSpec("compare", f"/compare?models={PHI2},{GPT2}", plotly=3, dataframes=1,
             title="Compare"),
    PageSpec("trends", f"/trends?model={PHI2}", plotly=1, dataframes=2, title="Trends"),
]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


@pytest.mark.parametrize("spec", SPECS, ids=[_slug(s.name) for s in SPECS])
def test_view_renders(app_url, browser, spec):
    seconds, p = load_page(browser, app_url, spec, timeout=90)
    shot = browser.screenshot(ARTIFACTS / f"browser_{_slug(spec.name)}.png")
    assert not p.get("exceptions"), f"{spec.name}: exception on the page: {p.get('errors')}"
    assert seconds is not None, f"{spec.name}: not rendered in 90 s: {p}"
    assert not p.get("errors"), f"{spec.name}: error box: {p['errors']}"
    assert p["textLength"] > 100 and shot.stat().st_size > 20_000
    nav = browser.evaluate("[...document.querySelectorAll('[data-testid=\"stSidebarNav\"] a')]"
                           ".map(a => a.innerText.split(\"\\n\").pop())")
    assert "Licence audit" in nav and "common" not in nav  # app.py's navigation
    if spec.plotly:
        assert p["plotly"] >= spec.plotly and p["plotlyTraces"] > 0
    assert p["dataframes"] >= spec.dataframes
    if spec.extra.get("tab"):  # charts inside a tab are drawn once the tab is opened
        assert browser.evaluate(
            "(() => { const t = [...document.querySelectorAll('[role=tab]')]"
            f".find(b => b.innerText.includes({spec.extra['tab']!r})); if (!t) return false;"
            " t.click(); return true; })()")
        deadline = time.monotonic() + 30
        want = spec.extra["plotly"]
        while time.monotonic() < deadline and probe(browser).get("plotly", 0) < want:
            time.sleep(0.2)
        assert probe(browser)["plotly"] >= spec.extra["plotly"]
        browser.screenshot(ARTIFACTS / f"browser_{_slug(spec.name)}_tab.png")


def test_markdown_id_is_shown_as_text_in_the_browser(app_url, browser):
    from urllib.parse import quote

    spec = PageSpec("trends (markdown id)", f"/trends?model={quote(POISON, safe='/')}",
                    plotly=1, title="Trends")
    seconds, p = load_page(browser, app_url, spec, timeout=90)
    assert seconds is not None and not p.get("exceptions"), p
    found = browser.evaluate(
        "({text: document.body.innerText.includes(" + repr(POISON).replace("'", '"') + "),"
        " imgs: [...document.querySelectorAll('img')].map(i => i.src)"
        "   .filter(s => s.includes('evil')).length,"
        " links: [...document.querySelectorAll('a')].map(a => a.href)"
        "   .filter(h => h.startsWith('http://evil')).length})")
    assert found == {"text": True, "imgs": 0, "links": 0}


def test_family_graphml_download(app_url, browser, tmp_path):
    """Click the lineage page's GraphML button: the file is built on click and is GraphML."""
    spec = PageSpec("lineage (phi-2)", f"/lineage?model={PHI2}", graph=True, title="Lineage")
    seconds, p = load_page(browser, app_url, spec, timeout=90)
    assert seconds is not None and not p.get("exceptions"), p
    browser.call("Page.setDownloadBehavior", behavior="allow", downloadPath=str(tmp_path))
    assert browser.evaluate(  # the buttons are in the Descendants tab (lazy: runs once opened)
        "(() => { const t = [...document.querySelectorAll('[role=tab]')]"
        ".find(b => b.innerText.includes('Descendants')); if (!t) return false;"
        " t.click(); return true; })()")
    find_button = ("[...document.querySelectorAll('button')]"
                   ".some(b => b.innerText.includes('Download family (GraphML)'))")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not browser.evaluate(find_button):
        time.sleep(0.2)
    clicked = browser.evaluate(
        "(() => { const b = [...document.querySelectorAll('button')]"
        ".find(b => b.innerText.includes('Download family (GraphML)'));"
        " if (!b) return false; b.scrollIntoView(); b.click(); return true; })()")
    assert clicked, "no GraphML button on the lineage page"
    deadline = time.monotonic() + 60
    files: list[Path] = []
    while time.monotonic() < deadline:
        files = [f for f in tmp_path.glob("*.graphml")]
        if files and files[0].stat().st_size > 0 and not list(tmp_path.glob("*.crdownload")):
            break
        time.sleep(0.2)
    assert files, f"nothing downloaded into {tmp_path}: {list(tmp_path.iterdir())}"
    root = check_graphml(files[0].read_bytes())
    nodes = root.findall(".//{http://graphml.graphdrawing.org/xmlns}node")
    assert len(nodes) == 54  # phi-2 and its descendants within the default two generations
