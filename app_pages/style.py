"""Colours shared by every chart and the lineage graph."""
from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

#: relation name → colour
RELATION_COLOURS: dict[str, str] = {
    "finetune": "#1f77b4",
    "adapter": "#ff7f0e",
    "quantized": "#2ca02c",
    "merge": "#9467bd",
    "unknown": "#7f7f7f",
}
FOCUS_COLOUR = "#d62728"
ANCESTOR_COLOUR = "#8c564b"
SUMMARY_COLOUR = "#c7c7c7"
OTHER_COLOUR = "#7f7f7f"


def rgba(hex_colour: str, alpha: float) -> str:
    """`#rrggbb` with an opacity, as plotly's `rgba(r,g,b,a)` (bands under a line)."""
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


#: the charts' plotly template: plotly's white template in Streamlit's fonts and colours (the
#: look `st.plotly_chart` gave them), transparent so a chart sits on the page's background.
#: It is plotly's default template for the figures pages build (app_pages/charts.py sets it):
#: plotly express picks trace colours from the default template when it builds a figure.
CHART_TEMPLATE_NAME = "hub_atlas"
_FONT = '"Source Sans", "Source Sans Pro", sans-serif'
CHART_TEMPLATE = go.layout.Template(pio.templates["plotly_white"])
CHART_TEMPLATE.layout.update(
    font=dict(family=_FONT, size=12, color="#31333F"),
    title=dict(font=dict(size=16)),
    colorway=["#0068c9", "#83c9ff", "#ff2b2b", "#ffabab", "#29b09d", "#7defa1", "#ff8700",
              "#ffd16a", "#6d3fc0", "#d5dae5"],
    paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
    hoverlabel=dict(font_family=_FONT),
    modebar=dict(bgcolor="rgba(0,0,0,0)", color="#a3a8b8", activecolor="#31333F"),
)
