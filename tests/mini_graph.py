"""Module-scoped fixtures and well-known ids of the mini graph, shared by the test files of
the analytics that read it (family, id index, overview). Import the fixtures by name."""
from __future__ import annotations

import pandas as pd
import pytest

from graph import queries as q

PHI2 = "microsoft/phi-2"  # 56 descendants over 3 levels in the mini graph
SDXL = "stabilityai/stable-diffusion-xl-base-1.0"
DEEP = "BramVanroy/fietje-2-chat"  # three ancestors up to phi-2


@pytest.fixture(scope="module")
def store(mini_graph_root):
    from graph.store import open_store

    s = open_store(read_only=True, root=mini_graph_root)
    yield s
    s.close()


@pytest.fixture(scope="module")
def models(store) -> pd.DataFrame:
    return store.frame("MATCH (m:Model) RETURN m.id AS id, m.createdAt AS createdAt, "
                       "m.pipelineTag AS task, m.libraryName AS library, m.license AS license, "
                       "m.stub AS stub, m.downloads AS downloads")


@pytest.fixture(scope="module")
def edges(store) -> pd.DataFrame:
    return store.frame(f"MATCH (c:Model)-[e:{q.LINEAGE_TYPES}]->(p:Model) "
                       "RETURN c.id AS child, p.id AS parent, label(e) AS rel")
