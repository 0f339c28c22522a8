"""Plotly figures on a page, drawn by plotly.js's basic bundle (scatter, bar and pie traces).

Why not `st.plotly_chart`: it ships the whole of plotly.js (a 4.7 MB module chunk) that a
fresh tab compiles again on every visit: 0.8–1.0 s of main-thread time per page with charts
on a 2-core AMD EPYC, most of what a page with charts spends in the browser (bench/pages.py).
The basic bundle (1.2 MB, `static/`, served by Streamlit's static route) is loaded once per
tab as a classic script, which the browser keeps compiled in its cache: ~0.2 s the first
time, ~0.06 s after. Figures stay plotly figures, built with plotly express / graph objects.
Without static serving (`streamlit run` from another folder) charts fall back to
`st.plotly_chart`.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from app_pages import style

#: the bundle under static/ (plotly.js-basic-dist-min on npm, same plotly.js as plotly.py's)
BUNDLE_VERSION = "4.1.1"
BUNDLE = f"plotly-basic-{BUNDLE_VERSION}.min.js"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
#: the trace types the basic bundle draws; a figure with another one is a programming error
BASIC_TRACES = frozenset({"scatter", "bar", "pie"})
#: the component's name (what an AppTest run lists its charts by)
COMPONENT_NAME = "hubatlas_plotly_chart"
#: plotly's own default height, used when a figure sets none
DEFAULT_HEIGHT = 450

_JS = r"""
let loading = null;
function loadPlotly(url) {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = url;
      s.async = true;
      s.onload = () => resolve(window.Plotly);
      s.onerror = () => { loading = null; reject(new Error("could not load " + url)); };
      document.head.appendChild(s);
    });
  }
  return loading;
}

function fullscreenButton(Plotly) {
  return {
    name: "fullscreen", title: "Full screen",
    // Material's "fullscreen" icon (plotly.js has none)
    icon: { width: 24, height: 24,
            path: "M7 14H5v5h5v-2H7v-3zm-2-4h2V7h3V5H5v5zm12 7h-3v2h5v-5h-2v3zM14 5v2h3v3h2V5h-5z" },
    click: (gd) => {
      if (document.fullscreenElement) document.exitFullscreen();
      else if (gd.requestFullscreen) gd.requestFullscreen();
    },
  };
}

// Text and grid lines in the page's text colour, so a chart reads on Streamlit's light and
// dark themes alike (the dark one follows the viewer's system setting)
function followPageColours(layout, text) {
  const faint = text.replace("rgb(", "rgba(").replace(")", ", 0.15)");
  const template = Object.assign({}, layout.template);
  const base = Object.assign({}, template.layout);
  base.font = Object.assign({}, base.font, { color: text });
  base.modebar = Object.assign({}, base.modebar, { activecolor: text });
  for (const axis of ["xaxis", "yaxis"]) {
    base[axis] = Object.assign({}, base[axis],
                               { gridcolor: faint, linecolor: faint, zerolinecolor: faint });
  }
  template.layout = base;
  layout.template = template;
}

export default function ({ parentElement, data }) {
  let gd = parentElement.querySelector("div.hubatlas-chart");
  if (!gd) {
    gd = document.createElement("div");
    gd.className = "hubatlas-chart";
    gd.style.width = "100%";
    parentElement.appendChild(gd);
  }
  gd.style.minHeight = data.height + "px";
  const figure = JSON.parse(data.figure);
  let alive = true;
  loadPlotly(data.bundle).then((Plotly) => {
    if (!alive) return;
    const layout = Object.assign({}, figure.layout || {}, { autosize: true });
    followPageColours(layout, getComputedStyle(gd).color);
    // the buttons st.plotly_chart showed; never "Share chart" (uploads to Plotly's cloud)
    const config = { displaylogo: false, responsive: true,
                     modeBarButtonsToRemove: ["sendChartToCloud", "select2d", "lasso2d"],
                     modeBarButtonsToAdd: [fullscreenButton(Plotly)] };
    Plotly.react(gd, figure.data || [], layout, config);
    if (!gd.dataset.fullscreenHooked) {
      gd.dataset.fullscreenHooked = "1";
      gd.addEventListener("fullscreenchange", () => {
        const full = document.fullscreenElement === gd;
        gd.style.background = full ? "white" : "";
        Plotly.relayout(gd, { height: full ? window.innerHeight : data.height });
      });
    }
  }).catch((err) => {
    gd.textContent = "The chart could not be drawn: " + err.message;
  });
  return () => {
    alive = false;
    if (window.Plotly) window.Plotly.purge(gd);
  };
}
"""

pio.templates[style.CHART_TEMPLATE_NAME] = style.CHART_TEMPLATE
# after `import streamlit`, which makes its own template (placeholder colours its frontend
# replaces) the default
pio.templates.default = style.CHART_TEMPLATE_NAME

_component = st.components.v2.component(COMPONENT_NAME, js=_JS, isolate_styles=False)


def trace_types(fig: go.Figure) -> set[str]:
    """The trace types a figure uses (plotly's default type is scatter)."""
    return {trace.type or "scatter" for trace in fig.data}


def bundle_url() -> str:
    """Where the browser fetches the bundle: Streamlit's static route under the base path."""
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return "/" + "/".join(p for p in (base, "app", "static", BUNDLE) if p)


def plotly_chart(fig: go.Figure, *, key: str, container: DeltaGenerator | None = None) -> None:
    """Draw `fig` across the width of `container` (the current one by default), in the app's
    chart template."""
    unknown = trace_types(fig) - BASIC_TRACES
    if unknown:
        raise ValueError(f"trace types {sorted(unknown)} are not in plotly.js's basic bundle "
                         f"({sorted(BASIC_TRACES)}): draw them another way")
    fig.update_layout(template=style.CHART_TEMPLATE_NAME)
    with container if container is not None else contextlib.nullcontext():
        if not st.get_option("server.enableStaticServing"):
            st.plotly_chart(fig, key=key, theme=None)
            return
        height = int(fig.layout.height or DEFAULT_HEIGHT)
        _component(key=key, data={"figure": fig.to_json(), "height": height,
                                  "bundle": bundle_url()}, height=height)
