"""What an AppTest run drew that AppTest has no accessor for: the charts
(app_pages/charts.py) and the lineage graph (neo4j-viz), both custom components."""
from __future__ import annotations

import json

from app_pages.charts import COMPONENT_NAME


def charts(at) -> list[dict]:
    """The plotly figures the run drew, as plotly JSON (`data`, `layout`), in page order."""
    assert not at.get("plotly_chart"), "pages draw charts with app_pages.charts.plotly_chart"
    return [json.loads(json.loads(e.proto.json)["figure"]) for e in at.get("bidi_component")
            if e.proto.component_name == COMPONENT_NAME]


def graphs(at) -> list:
    """The custom components that are not charts: the lineage page's neo4j-viz graph."""
    return [e for e in at.get("bidi_component") if e.proto.component_name != COMPONENT_NAME]
