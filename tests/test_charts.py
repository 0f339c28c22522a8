"""app_pages/charts.py: figures go to the basic-bundle component, in the app's template; a
trace type the bundle cannot draw fails loudly; without static serving, st.plotly_chart."""
from __future__ import annotations

import plotly.io as pio
import plotly.offline
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from app_pages import charts, style
from tests.page_elements import charts as drawn_charts


def _page(kind: str) -> None:
    import plotly.express as px  # (AppTest runs the function's source alone)
    import plotly.graph_objects as go
    import streamlit as st

    from app_pages.charts import plotly_chart

    if kind == "bar":
        fig = px.bar(x=["a", "b"], y=[1, 2], color=["a", "b"])
        fig.update_layout(height=300)
        left, _ = st.columns(2)
        plotly_chart(fig, key="bar", container=left)
    else:
        plotly_chart(go.Figure(go.Heatmap(z=[[1, 2], [3, 4]])), key="heat")


def _run(kind: str) -> AppTest:
    return AppTest.from_function(_page, args=(kind,)).run()


def test_a_figure_goes_to_the_component_in_the_app_template():
    at = _run("bar")
    assert not at.exception
    (fig,) = drawn_charts(at)
    assert fig["layout"]["height"] == 300
    assert fig["layout"]["template"]["layout"]["colorway"][:2] == ["#0068c9", "#83c9ff"]
    # plotly express took the trace colours from the app's template, not Streamlit's
    # placeholders (#000001…), which only Streamlit's own chart element replaces
    assert [t["marker"]["color"] for t in fig["data"]] == ["#0068c9", "#83c9ff"]
    (element,) = at.get("bidi_component")
    assert '"bundle": "/app/static/' + charts.BUNDLE in element.proto.json


def test_a_trace_type_the_bundle_lacks_is_an_error():
    at = _run("heatmap")
    assert at.exception and "heatmap" in at.exception[0].message
    assert "basic bundle" in at.exception[0].message


def test_without_static_serving_it_falls_back_to_st_plotly_chart():
    assert st.get_option("server.enableStaticServing")  # .streamlit/config.toml
    st.config.set_option("server.enableStaticServing", False)
    try:
        at = _run("bar")
    finally:
        st.config.set_option("server.enableStaticServing", True)
    assert not at.exception
    assert len(at.get("plotly_chart")) == 1 and not at.get("bidi_component")


def test_bundle_url_follows_the_base_path(monkeypatch):
    options = {"server.baseUrlPath": "/atlas/"}
    monkeypatch.setattr(st, "get_option", lambda name: options[name])
    assert charts.bundle_url() == "/atlas/app/static/" + charts.BUNDLE
    options["server.baseUrlPath"] = ""
    assert charts.bundle_url() == "/app/static/" + charts.BUNDLE


def test_the_bundle_is_shipped_and_matches_plotly_py():
    path = charts.STATIC_DIR / charts.BUNDLE
    head = path.read_text(encoding="utf-8", errors="replace")[:200]
    version = charts.BUNDLE_VERSION
    assert f"plotly.js (basic - minified) v{version}" in head
    # the figure JSON plotly.py writes (typed arrays, attribute names) is plotly.js's of the
    # same major version
    assert plotly.offline.get_plotlyjs_version().split(".")[0] == version.split(".")[0]
    assert (charts.STATIC_DIR / "plotly-basic-LICENSE.txt").exists()


def test_the_app_template_is_plotlys_default():
    assert pio.templates.default == style.CHART_TEMPLATE_NAME


@pytest.mark.parametrize("trace", ["scatter", "bar", "pie"])
def test_basic_traces(trace):
    import plotly.graph_objects as go

    fig = go.Figure({"data": [{"type": trace}]})
    assert charts.trace_types(fig) == {trace} <= charts.BASIC_TRACES
