"""Model ids and `?model=` are text on every page, never Markdown (issue 8, last finding).

`app_pages.common.md_text` escapes what a page shows; `hub_url` percent-encodes the Hub link.
The browser test serves a graph holding models whose ids are Markdown payloads (an image
pointing at a local listener, a link that would rewrite "open on the Hub") and opens the
lineage and forecasts pages with hostile ids in the graph and in `?model=`: the listener is
never contacted, no link points at it, the Hub link is exactly the encoded id, and the id
is shown literally.
"""
from __future__ import annotations

import html as html_lib
import http.server
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parent.parent


# -- the helper ---------------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [
    "![x](http://127.0.0.1:9/x.png)", "a)[click](http://evil.example/)", "**bold** _it_ `code`",
    ":red[alert] :material/home: $x^2$", "<img src=x onerror=alert(1)>", "line\nbreak # h1",
    "meta-llama/Meta-Llama-3-8B", "[x]: http://evil.example/ 'ref'", "<http://evil.example/>",
    "``a`<http://evil/`>b``", "` leading and trailing `", " spaced ", "`", "",
])
def test_md_text_renders_literally(raw):
    """Rendered by a CommonMark renderer (markdown-it-py, the rules Streamlit's renderer
    follows), the text is one code span holding exactly the raw text (line breaks as
    spaces), with no element inside."""
    from markdown_it import MarkdownIt  # markdown-it-py (via rich, a Streamlit dependency)

    from app_pages.common import md_text

    html = MarkdownIt("commonmark").renderInline(md_text(raw))
    assert html.startswith("<code>") and html.endswith("</code>") and html.count("<") == 2
    assert html_lib.unescape(html[len("<code>"):-len("</code>")]) == (
        " ".join(raw.splitlines()) or " ")


def test_hub_url_keeps_the_id_in_the_path():
    from app_pages.common import hub_url

    url = hub_url("a/b)[click](http://evil)?x#y")
    assert url.startswith("https://huggingface.co/a/b")
    assert not set(url[len("https://huggingface.co/"):]) & set("()[]?#: ")
    assert hub_url("meta-llama/Meta-Llama-3-8B") == \
        "https://huggingface.co/meta-llama/Meta-Llama-3-8B"


# -- the browser ----------------------------------------------------------------------------------
class _Listener(http.server.ThreadingHTTPServer):
    """Stands for the attacker's server: records every request it gets."""

    def __init__(self):
        self.hits: list[str] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                listener.hits.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def listener():
    server = _Listener()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def hostile_ids(listener) -> dict[str, str]:
    return {"image": f"evil/![x]({listener.base}/pixel.png)",
            "link": f"evil/x)[click]({listener.base}/click)",
            "directives": "evil/:red[alert] $x^2$ **bold** <b>html</b>",
            "absent": f"nothing/![y]({listener.base}/absent.png)"}


@pytest.fixture(scope="module")
def hostile_graph(mini_graph_root, tmp_path_factory, hostile_ids) -> Path:
    """The mini graph plus two models with Markdown ids; the link one is phi-2's base."""
    from graph.generations import Generations
    from graph.kuzu_store import KuzuStore

    root = tmp_path_factory.mktemp("hostile-ids") / "graph"
    shutil.copytree(mini_graph_root, root)
    gens = Generations(root)
    staging = gens.new_staging("hostile-ids")
    store = KuzuStore(staging, read_only=False)
    img, link = hostile_ids["image"], hostile_ids["link"]
    store.write([
        ("CREATE (:Model {id: $id, author: $id, pipelineTag: $id, libraryName: $id, "
         "license: $id, likes: 1, downloads: 1, stub: false})", {"id": img}),
        ("CREATE (:Model {id: $id, author: 'evil', likes: 2, downloads: 2, stub: false})",
         {"id": link}),
        ("CREATE (:Model {id: $id, author: $id, likes: 3, downloads: 3, stub: false})",
         {"id": hostile_ids["directives"]}),
        ("MATCH (c:Model {id: 'microsoft/phi-2'}), (p:Model {id: $id}) "
         "CREATE (c)-[:FINETUNE_OF {inferred: false}]->(p)", {"id": link}),
    ])
    store.close()
    gens.publish(staging.parent)
    return root


@pytest.fixture(scope="module")
def app(hostile_graph, tmp_path_factory):
    from bench.pages import find_chromium, streamlit_server

    if find_chromium() is None:
        pytest.skip("no Chromium found (apt-get install -y chromium, or set HUBATLAS_CHROMIUM)")
    log = tmp_path_factory.mktemp("ids-log") / "streamlit.log"
    with streamlit_server(hostile_graph, log=log, extra_env={"HUBATLAS_WARM_SEARCH": "0"}
                          ) as url:
        yield url


@pytest.fixture(scope="module")
def browser(app):
    from bench.pages import Chromium, find_chromium

    with Chromium(find_chromium(), width=1400, height=2000) as b:
        yield b


LINKS_JS = r"""
(() => {
  const main = document.querySelector('[data-testid="stMain"]') || document.body;
  return {
    anchors: [...main.querySelectorAll('a')].map(a => [a.innerText.trim(), a.href]),
    images: [...document.querySelectorAll('img')].map(i => i.src),
    resources: performance.getEntriesByType('resource').map(e => e.name),
    text: main.innerText,
  };
})()
"""


def _visit(browser, url: str, path: str, title: str) -> dict:
    from bench.pages import PageSpec, load_page

    seconds, p = load_page(browser, url, PageSpec(path, path, title=title), timeout=90)
    assert seconds is not None and not p.get("exceptions"), p
    time.sleep(1.0)  # give any image or prefetch time to go out
    return browser.evaluate(LINKS_JS)


def _assert_inert(page: dict, listener, url: str) -> None:
    assert not listener.hits, f"the page contacted the attacker's server: {listener.hits}"
    assert not [i for i in page["images"] if listener.base in i]
    assert not [a for a in page["anchors"] if listener.base in a[1]], page["anchors"]
    assert not [r for r in page["resources"] if r.startswith("http") and not r.startswith(url)]


@pytest.mark.browser
@pytest.mark.parametrize("which", ["image", "link", "directives"])
def test_lineage_page_shows_a_hostile_id_as_text(app, browser, listener, hostile_ids, which):
    from app_pages.common import hub_url

    model_id = hostile_ids[which]
    page = _visit(browser, app, f"/lineage?model={quote(model_id, safe='')}", "Lineage")
    _assert_inert(page, listener, app)
    hub = [href for text, href in page["anchors"] if text == "open on the Hub"]
    assert hub == [hub_url(model_id)], page["anchors"]
    assert not [a for a in page["anchors"] if a[0] == "click"]
    assert model_id in page["text"]  # the id itself, character for character
    assert not browser.evaluate("document.querySelectorAll('[data-testid=stMain] strong b, "
                                "[data-testid=stMain] .katex').length")


@pytest.mark.browser
def test_hostile_root_in_the_ancestors_caption(app, browser, listener, hostile_ids):
    page = _visit(browser, app, "/lineage?model=microsoft/phi-2", "Lineage")
    _assert_inert(page, listener, app)
    assert not [a for a in page["anchors"] if a[0] == "click"]
    hub = [href for text, href in page["anchors"] if text == "open on the Hub"]
    assert hub == ["https://huggingface.co/microsoft/phi-2"]


@pytest.mark.browser
@pytest.mark.parametrize("path,title", [("/lineage?model=", "Lineage"),
                                        ("/forecasts?model=", "Adoption forecasts")])
def test_hostile_query_parameter_is_text(app, browser, listener, hostile_ids, path, title):
    model_id = hostile_ids["absent"]
    page = _visit(browser, app, path + quote(model_id, safe=""), title)
    _assert_inert(page, listener, app)
    assert model_id in page["text"]
