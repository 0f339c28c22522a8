"""Colours shared by every chart and the lineage graph."""
from __future__ import annotations

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
