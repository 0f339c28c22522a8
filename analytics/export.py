"""A model family as a graph file: GraphML (Gephi, Cytoscape, yEd, networkx) and node-link
JSON (networkx, D3), with typed lineage edges and the models' key properties.

The family of a model is the model itself, its ancestors up to the roots and its
descendants to `max_depth`; edges are every lineage relation between two of those models
(merges keep all their parents inside the family). Edges point from derivative to base, as
in the graph. The edge property `source` of the graph (typed_tag / tag / card) is exported as
`evidence`, since `source` names an edge's end in node-link JSON.

Whole-graph export is a different thing: `python -m graph export --parquet DIR`
(`graph.parquet_export`).
"""
from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd

from graph.store import GraphStore

GRAPHML_NS = "http://graphml.graphdrawing.org/xmlns"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
GRAPHML_XSD = "http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd"

#: exported attribute → GraphML type (long / double / boolean / string)
NODE_ATTRS: dict[str, str] = {
    "label": "string", "kind": "string", "depth": "long", "author": "string",
    "license": "string", "downloads": "long", "likes": "long", "createdAt": "string",
    "pipelineTag": "string", "libraryName": "string", "parameters": "long", "gated": "string",
    "stub": "boolean", "licenseVerdict": "string", "licenseChainVerdict": "string",
    "familyRoot": "string"}
EDGE_ATTRS: dict[str, str] = {"relation": "string", "inferred": "boolean", "evidence": "string"}
GRAPH_ATTRS: dict[str, str] = {"focus": "string", "max_depth": "long", "nodes": "long",
                               "edges": "long", "outside_parents": "long"}

# characters XML 1.0 cannot hold, even escaped
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass
class FamilyGraph:
    """nodes: one row per model (id + NODE_ATTRS except label); edges: source (derivative),
    target (base), relation, inferred, evidence."""

    focus: str
    nodes: pd.DataFrame
    edges: pd.DataFrame
    max_depth: int
    outside_parents: int = 0  # edges to parents outside the family (merges), not exported
    meta: dict = field(default_factory=dict)


def family_graph(store: GraphStore, model_id: str, *, max_depth: int = 10,
                 limit: int = 50_000) -> FamilyGraph:
    """The family of `model_id` with every lineage edge inside it (see the module doc)."""
    from graph import queries as q
    from graph import views_queries as vq

    desc = q.descendants(store, model_id, max_depth, limit=limit)
    anc = q.ancestors(store, model_id)
    depth = {model_id: 0}
    kind = {model_id: "focus"}
    for i, d in zip(anc["id"], anc["depth"]):
        depth[i], kind[i] = -int(d), "ancestor"
    for i, d in zip(desc["id"], desc["depth"]):
        depth.setdefault(i, int(d))
        kind.setdefault(i, "descendant")
    ids = list(depth)
    nodes = vq.models_by_id(store, ids)
    if nodes.empty:
        raise KeyError(f"model {model_id!r} is not in the graph")
    nodes.insert(1, "kind", nodes["id"].map(kind))
    nodes.insert(2, "depth", nodes["id"].map(depth).astype("int64"))
    nodes = nodes.sort_values(["depth", "id"]).reset_index(drop=True)
    edges = vq.lineage_edges_from(store, ids)
    inside = edges["parent"].isin(set(ids))
    edges = edges[inside].rename(columns={"child": "source", "parent": "target",
                                          "source": "evidence"})
    edges = edges[["source", "target", "relation", "inferred", "evidence"]]
    return FamilyGraph(focus=model_id, nodes=nodes,
                       edges=edges.sort_values(["source", "target"]).reset_index(drop=True),
                       max_depth=int(max_depth), outside_parents=int((~inside).sum()))


# -- values ----------------------------------------------------------------------------------
def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # lists and other containers
        return False


def _clean(text: str) -> str:
    return _XML_BAD.sub("\ufffd", text)


def _value(v: Any, typ: str) -> Any:
    """A JSON-safe value of GraphML type `typ`, or None."""
    if _missing(v):
        return None
    if typ == "long":
        return int(v)
    if typ == "double":
        f = float(v)
        return f if math.isfinite(f) else None
    if typ == "boolean":
        return bool(v)
    if isinstance(v, (pd.Timestamp, datetime, date)):
        return pd.Timestamp(v).isoformat()
    return _clean(str(v))


def _records(df: pd.DataFrame, attrs: dict[str, str], extra: dict[str, str]) -> list[dict]:
    cols = {**extra, **{a: t for a, t in attrs.items() if a in df.columns}}
    out = []
    for row in df.to_dict("records"):
        out.append({c: _value(row.get(c), t) for c, t in cols.items()})
    return out


def node_records(fg: FamilyGraph) -> list[dict]:
    recs = _records(fg.nodes, NODE_ATTRS, {"id": "string"})
    for r in recs:
        r["label"] = r["id"]
    return recs


def edge_records(fg: FamilyGraph) -> list[dict]:
    return _records(fg.edges, EDGE_ATTRS, {"source": "string", "target": "string"})


# -- writers ---------------------------------------------------------------------------------
def to_graphml(fg: FamilyGraph) -> bytes:
    """GraphML 1.0 (directed; keys typed; missing values left out)."""
    ET.register_namespace("", GRAPHML_NS)
    ET.register_namespace("xsi", XSI_NS)
    root = ET.Element(f"{{{GRAPHML_NS}}}graphml",
                      {f"{{{XSI_NS}}}schemaLocation": f"{GRAPHML_NS} {GRAPHML_XSD}"})
    keys: dict[tuple[str, str], str] = {}
    for domain, attrs in (("graph", GRAPH_ATTRS), ("node", NODE_ATTRS), ("edge", EDGE_ATTRS)):
        for name, typ in attrs.items():
            kid = f"{domain[0]}_{name}"
            keys[(domain, name)] = kid
            ET.SubElement(root, f"{{{GRAPHML_NS}}}key", {
                "id": kid, "for": domain, "attr.name": name, "attr.type": typ})
    graph = ET.SubElement(root, f"{{{GRAPHML_NS}}}graph",
                          {"id": _clean(fg.focus), "edgedefault": "directed"})
    _data(graph, _graph_attrs(fg), GRAPH_ATTRS, keys, "graph")
    for rec in node_records(fg):
        el = ET.SubElement(graph, f"{{{GRAPHML_NS}}}node", {"id": rec["id"]})
        _data(el, rec, NODE_ATTRS, keys, "node")
    for i, rec in enumerate(edge_records(fg)):
        el = ET.SubElement(graph, f"{{{GRAPHML_NS}}}edge", {
            "id": f"e{i}", "source": rec["source"], "target": rec["target"]})
        _data(el, rec, EDGE_ATTRS, keys, "edge")
    ET.indent(root, space=" ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _data(el: ET.Element, rec: dict, attrs: dict[str, str], keys: dict, domain: str) -> None:
    for name, typ in attrs.items():
        v = rec.get(name)
        if v is None:
            continue
        text = ("true" if v else "false") if typ == "boolean" else str(v)
        ET.SubElement(el, f"{{{GRAPHML_NS}}}data", {"key": keys[(domain, name)]}).text = text


def _graph_attrs(fg: FamilyGraph) -> dict[str, Any]:
    return {"focus": fg.focus, "max_depth": fg.max_depth, "nodes": len(fg.nodes),
            "edges": len(fg.edges), "outside_parents": fg.outside_parents}


def to_json(fg: FamilyGraph) -> bytes:
    """networkx node-link JSON: `nx.node_link_graph(json.loads(data), edges="edges")`."""
    data = {"directed": True, "multigraph": False, "graph": _graph_attrs(fg),
            "nodes": node_records(fg), "edges": edge_records(fg)}
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def to_csv(fg: FamilyGraph) -> bytes:
    """The nodes table as CSV (the edges are in the GraphML/JSON files)."""
    return fg.nodes.to_csv(index=False).encode("utf-8")


def family_files(store: GraphStore, model_id: str, max_depth: int = 10) -> dict[str, bytes]:
    """GraphML, JSON and CSV of a family at once (one read): {"graphml": …, "json": …,
    "csv": …}. For a page's download buttons, cached per generation."""
    fg = family_graph(store, model_id, max_depth=max_depth)
    return {"graphml": to_graphml(fg), "json": to_json(fg), "csv": to_csv(fg)}
