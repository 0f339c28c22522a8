"""Real browser: `python app.py` (Streamlit) on 127.0.0.1 over the mini graph, every page opened in
headless Chromium (DevTools protocol), screenshots in tests/_artifacts/, and a DOM check that
each page drew its charts / lineage graph / tables without an exception or error box.

Needs a Chromium binary (Debian: `apt-get install -y chromium`); skipped when none is found.
Everything is served locally: the lineage graph (neo4j-viz) ships its JS in the package.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from analytics.pipeline import SEARCH, build_now
from app_pages.charts import BUNDLE_VERSION
from bench.pages import Chromium, PageSpec, load_page, page_specs, streamlit_server

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent / "_artifacts"
OWN_PAGES = ("overview", "lineage", "console")  # pages of this module's owner; others: smoke


@pytest.fixture(scope="module")
def app_url(mini_graph_root, tmp_path_factory, chromium_binary):
    db = tmp_path_factory.mktemp("browser") / "graph"
    shutil.copytree(mini_graph_root, db)
    with pytest.MonkeyPatch.context() as env:  # the job's search step, as after an ingest
        env.setenv("HUBATLAS_DB", str(db))
        assert [s.ok for s in build_now([SEARCH])] == [True]
    ARTIFACTS.mkdir(exist_ok=True)
    with streamlit_server(db, log=ARTIFACTS / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser(chromium_binary):
    with Chromium(chromium_binary, width=1400, height=2200) as b:
        yield b


SPECS = page_specs("stabilityai/stable-diffusion-xl-base-1.0", small_model="microsoft/phi-2")
SPECS.append(PageSpec("lineage (ancestors)", "/lineage?model=BramVanroy/fietje-2-chat",
                      graph=True, title="Lineage"))


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


@pytest.mark.parametrize("spec", SPECS, ids=[_slug(s.name) for s in SPECS])
def test_page_renders(app_url, browser, spec):
    seconds, p = load_page(browser, app_url, spec, timeout=60)
    shot = browser.screenshot(ARTIFACTS / f"browser_{_slug(spec.name)}.png")
    assert not p.get("exceptions"), f"{spec.name}: exception on the page: {p.get('errors')}"
    assert seconds is not None, f"{spec.name}: not rendered in 60 s: {p}"
    assert not p.get("errors"), f"{spec.name}: error box: {p['errors']}"
    assert p["textLength"] > 100, f"{spec.name}: page looks blank: {p}"
    assert shot.stat().st_size > 20_000, f"{spec.name}: screenshot looks blank"
    if spec.plotly:
        assert p["plotly"] >= spec.plotly and p["plotlyTraces"] > 0
    if spec.graph:  # the neo4j-viz canvas is drawn and has a size
        assert p["graphCanvases"] >= 1 and p["graphPixels"] > 100_000
    if spec.dataframes:
        assert p["dataframes"] >= spec.dataframes


@pytest.mark.parametrize("spec", [s for s in SPECS if s.name.startswith(OWN_PAGES)][:4],
                         ids=lambda s: _slug(s.name))
def test_no_page_fetches_from_the_internet(app_url, browser, spec):
    """Every resource the page loads (scripts, styles, fonts, icons, frames) is local."""
    load_page(browser, app_url, spec, timeout=60)
    urls = browser.evaluate(
        "[...performance.getEntriesByType('resource')].map(e => e.name)"
        ".concat([...document.querySelectorAll('script[src],link[href],iframe[src]')]"
        ".map(e => e.src || e.href))")
    external = [u for u in urls if u.startswith("http") and not u.startswith(app_url)]
    assert not external, external


def test_a_deep_link_as_first_request_lists_only_the_app_pages(mini_graph_root, tmp_path, browser):
    """The first request after a (re)start is a deep link: the sidebar lists the app's pages,
    never the modules of the pages folder (Streamlit's legacy pages/ mode ran it alone)."""
    import time

    db = tmp_path / "graph"
    shutil.copytree(mini_graph_root, db)
    with streamlit_server(db) as url:
        browser.navigate(url + "/lineage?model=microsoft/phi-2")
        links, deadline = [], time.time() + 60
        while time.time() < deadline and _app_pages()[-1][1] not in links:
            time.sleep(1)
            links = browser.evaluate("[...document.querySelectorAll("
                                     "'[data-testid=stSidebarNav] a span')].map(s => s.innerText)")
    titles = [t for t in links if t and not t.islower()]  # icon ligatures are lower-case words
    assert titles == [title for _, title, _, _ in _app_pages()], links


def _app_pages() -> list[tuple[str, str, str, str]]:
    """app.PAGES, read without running the app."""
    import ast

    tree = ast.parse((Path(__file__).resolve().parent.parent / "app.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign)
                and getattr(n.targets[0], "id", None) == "PAGES")
    return ast.literal_eval(node.value)


def test_charts_draw_with_the_basic_bundle(app_url, browser):
    """The overview's charts are drawn by app_pages/charts.py: plotly.js's basic bundle from
    the app's static route, in the app's colours (not Streamlit's placeholder colours, which
    only its own chart element replaces), with a full-screen button and no "Share chart"
    button (it uploads the figure to Plotly's cloud)."""
    seconds, p = load_page(browser, app_url, SPECS[0], timeout=60)
    assert seconds is not None and p["plotly"] >= 3, p
    loaded = browser.evaluate("[...performance.getEntriesByType('resource')].map(e => e.name)")
    assert any("/app/static/plotly-basic-" in u for u in loaded), loaded
    assert browser.evaluate("window.Plotly && window.Plotly.version") == BUNDLE_VERSION
    fills = browser.evaluate("[...document.querySelectorAll('.js-plotly-plot .point path')]"
                             ".map(e => getComputedStyle(e).fill)")
    assert fills and not [f for f in fills if f.startswith("rgb(0, 0, ")], set(fills)
    titles = browser.evaluate("[...document.querySelector('.js-plotly-plot')"
                              ".querySelectorAll('.modebar-btn')].map(b => b.dataset.title)")
    assert "Full screen" in titles and not any("Share" in t for t in titles), titles
    full = browser.call("Runtime.evaluate", userGesture=True, awaitPromise=True, returnByValue=True, expression=(
        "(async () => { document.querySelector('.js-plotly-plot [data-title=\"Full screen\"]')"
        ".click(); await new Promise(r => setTimeout(r, 500));"
        " const e = document.fullscreenElement; const h = e && e.getBoundingClientRect().height;"
        " if (e) await document.exitFullscreen(); return [!!e && e.classList.contains('js-plotly-plot'),"
        " h, window.innerHeight]; })()"))["result"]["value"]
    assert full[0] and full[1] >= 0.9 * full[2], full


def test_charts_follow_a_dark_theme(app_url, browser):
    """Streamlit follows the viewer's system theme; the charts' text follows the page's."""
    browser.call("Emulation.setEmulatedMedia",
                 features=[{"name": "prefers-color-scheme", "value": "dark"}])
    try:
        seconds, p = load_page(browser, app_url, SPECS[0], timeout=60)
        assert seconds is not None and p["plotly"] >= 3, p
        page, ticks = browser.evaluate(
            "[getComputedStyle(document.querySelector('[data-testid=stApp]')).color,"
            " [...document.querySelectorAll('.js-plotly-plot .xtick text')]"
            ".map(e => getComputedStyle(e).fill)]")
        browser.screenshot(ARTIFACTS / "browser_overview_dark.png")
    finally:
        browser.call("Emulation.setEmulatedMedia", features=[])

    def lightness(rgb: str) -> float:
        r, g, b = (float(v) for v in rgb[rgb.index("(") + 1:rgb.index(")")].split(",")[:3])
        return (r + g + b) / 765

    assert lightness(page) > 0.7, page  # the dark theme is on: light text
    assert ticks and {lightness(t) > 0.7 for t in ticks} == {True}, set(ticks)
