"""analytics/export.py: a family as GraphML and node-link JSON, read back by networkx and
checked strictly against the GraphML structure; poison ids survive the round trip."""
from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import pytest

from analytics import export as X
from graph import queries as q
from graph.generations import Generations
from graph.kuzu_store import KuzuStore

PHI2 = "microsoft/phi-2"
G = "{http://graphml.graphdrawing.org/xmlns}"
POISON = ["evil/![x](http://evil)", "evil/<script>alert(1)</script>", 'evil/"quote\'s & amp',
          "evil/ctrl\x01char", "evil/ünïcödé-模型"]


@pytest.fixture(scope="module")
def mini_store(mini_graph_root):
    from graph.store import open_store

    store = open_store(read_only=True, root=mini_graph_root)
    yield store
    store.close()


def check_graphml(data: bytes) -> ET.Element:
    """Strict structural check of GraphML 1.0 (the graphml.xsd content model the readers
    rely on): namespace, keys first with id/for/attr.name/attr.type from the allowed sets,
    one directed graph, unique node ids, edges between declared nodes, data only with
    declared keys of the right domain and values parseable as the key's type."""
    root = ET.fromstring(data)  # well-formed XML or it raises
    assert root.tag == f"{G}graphml"
    children = list(root)
    kinds = [c.tag for c in children]
    assert kinds.count(f"{G}graph") == 1
    first_graph = kinds.index(f"{G}graph")
    assert all(k == f"{G}key" for k in kinds[:first_graph])
    keys = {}
    for k in root.findall(f"{G}key"):
        assert k.get("for") in ("graph", "node", "edge", "all")
        assert k.get("attr.type") in ("boolean", "int", "long", "float", "double", "string")
        assert k.get("id") not in keys and k.get("attr.name")
        keys[k.get("id")] = (k.get("for"), k.get("attr.type"))
    graph = root.find(f"{G}graph")
    assert graph.get("edgedefault") in ("directed", "undirected")

    def data_ok(el, domain):
        for d in el.findall(f"{G}data"):
            dom, typ = keys[d.get("key")]
            assert dom in (domain, "all")
            text = d.text or ""
            if typ in ("int", "long"):
                int(text)
            elif typ in ("float", "double"):
                float(text)
            elif typ == "boolean":
                assert text in ("true", "false")

    data_ok(graph, "graph")
    ids = set()
    for n in graph.findall(f"{G}node"):
        assert n.get("id") and n.get("id") not in ids
        ids.add(n.get("id"))
        data_ok(n, "node")
    for e in graph.findall(f"{G}edge"):
        assert e.get("source") in ids and e.get("target") in ids
        data_ok(e, "edge")
    assert {c.tag for c in graph} <= {f"{G}data", f"{G}node", f"{G}edge"}
    return root


def test_family_graph_of_phi2(mini_store):
    fg = X.family_graph(mini_store, "BramVanroy/fietje-2")
    kinds = fg.nodes.set_index("id")["kind"]
    assert kinds["BramVanroy/fietje-2"] == "focus" and kinds[PHI2] == "ancestor"
    desc = q.descendants(mini_store, "BramVanroy/fietje-2", 10)
    assert len(fg.nodes) == 1 + len(desc) + 1  # focus, descendants, phi-2
    assert set(fg.edges["relation"]) <= {"finetune", "adapter", "quantized", "merge", "unknown"}
    assert fg.edges["source"].isin(fg.nodes["id"]).all()
    assert fg.edges["target"].isin(fg.nodes["id"]).all()
    with pytest.raises(KeyError):
        X.family_graph(mini_store, "no-such/model")


def test_graphml_and_json_round_trip_through_networkx(mini_store):
    import networkx as nx
    fg = X.family_graph(mini_store, PHI2)
    gml = X.to_graphml(fg)
    check_graphml(gml)
    g = nx.read_graphml(io.BytesIO(gml))
    assert g.is_directed()
    assert g.number_of_nodes() == len(fg.nodes) == 57
    assert g.number_of_edges() == len(fg.edges)
    node = g.nodes[PHI2]
    assert node["license"] == "mit" and node["kind"] == "focus" and node["depth"] == 0
    assert isinstance(node["downloads"], int) and node["downloads"] > 0
    child = next(iter(g.predecessors(PHI2)))
    assert g.edges[child, PHI2]["relation"] == "finetune"
    assert g.graph["focus"] == PHI2
    data = json.loads(X.to_json(fg))
    h = nx.node_link_graph(data, edges="edges", directed=True, multigraph=False)
    assert sorted(h.nodes) == sorted(g.nodes) and sorted(h.edges) == sorted(g.edges)
    assert h.nodes[PHI2]["downloads"] == node["downloads"]
    files = X.family_files(mini_store, PHI2)
    assert files["graphml"] == gml and files["csv"].startswith(b"id,kind,depth")


def test_graphml_without_networkx_is_still_valid(mini_store):
    fg = X.family_graph(mini_store, "stabilityai/stable-diffusion-xl-base-1.0", max_depth=1)
    root = check_graphml(X.to_graphml(fg))
    assert len(root.find(f"{G}graph").findall(f"{G}node")) == len(fg.nodes) == 41


def test_poison_ids_survive_export(mini_graph_copy):
    """Ids with Markdown, HTML, quotes, control characters and non-ASCII: valid XML/JSON,
    the same ids back (control characters become U+FFFD, which XML 1.0 cannot hold)."""
    store = KuzuStore(Generations(mini_graph_copy).current_path(), read_only=False)
    try:
        store.write([("UNWIND $ids AS i CREATE (:Model {id: i, author: 'evil', stub: false, "
                      "license: 'mit'})", {"ids": POISON}),
                     ("UNWIND $ids AS i MATCH (c:Model {id: i}), (p:Model {id: $p}) "
                      "CREATE (c)-[:FINETUNE_OF {inferred: true, source: 'tag'}]->(p)",
                      {"ids": POISON, "p": PHI2})])
        fg = X.family_graph(store, PHI2)
    finally:
        store.close()
    gml = X.to_graphml(fg)
    root = check_graphml(gml)
    ids = {n.get("id") for n in root.iter(f"{G}node")}
    expected = {p.replace("\x01", "\ufffd") for p in POISON}
    assert expected <= ids
    data = json.loads(X.to_json(fg))
    assert expected <= {n["id"] for n in data["nodes"]}
    assert b"<script>" not in gml  # escaped, not markup
