"""The graph schema, after HuggingKG: node labels, relation types and their properties.

One declaration serves both backends: `KuzuStore` turns it into `CREATE NODE/REL TABLE`
statements, `Neo4jStore` into uniqueness constraints. Labels and relation types are enums so
query builders can format them into Cypher (identifiers cannot be parameters) safely.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Label(str, Enum):
    MODEL = "Model"
    DATASET = "Dataset"
    SPACE = "Space"
    PAPER = "Paper"
    COLLECTION = "Collection"
    USER = "User"
    ORGANIZATION = "Organization"
    TASK = "Task"
    LIBRARY = "Library"
    LICENSE = "License"
    INGEST_RUN = "IngestRun"


class Rel(str, Enum):
    # lineage, child → parent
    FINETUNE_OF = "FINETUNE_OF"
    ADAPTER_OF = "ADAPTER_OF"
    QUANTIZED_OF = "QUANTIZED_OF"
    MERGE_OF = "MERGE_OF"
    DERIVED_FROM = "DERIVED_FROM"  # a base_model link whose relation is unknown
    # everything else
    HAS_TASK = "HAS_TASK"
    TRAINED_ON = "TRAINED_ON"
    CITES = "CITES"
    USES_MODEL = "USES_MODEL"
    USES_DATASET = "USES_DATASET"
    PUBLISHED = "PUBLISHED"
    USES_LIBRARY = "USES_LIBRARY"
    HAS_LICENSE = "HAS_LICENSE"
    IN_COLLECTION = "IN_COLLECTION"
    OBSERVED_IN = "OBSERVED_IN"


#: relation name in records ("finetune") → relation type in the graph
LINEAGE_RELS: dict[str, Rel] = {
    "finetune": Rel.FINETUNE_OF,
    "adapter": Rel.ADAPTER_OF,
    "quantized": Rel.QUANTIZED_OF,
    "merge": Rel.MERGE_OF,
    "unknown": Rel.DERIVED_FROM,
}
REL_TO_RELATION: dict[str, str] = {r.value: name for name, r in LINEAGE_RELS.items()}


@dataclass(frozen=True)
class NodeSpec:
    label: Label
    properties: tuple[tuple[str, str], ...]  # (name, Kùzu type); the first is the primary key
    doc: str


@dataclass(frozen=True)
class RelSpec:
    rel: Rel
    pairs: tuple[tuple[Label, Label], ...]
    properties: tuple[tuple[str, str], ...]
    doc: str


#: properties the scheduled job's batch builders write after ingest (analytics.licences), not
#: ingest: the licence verdict against the parents, the worst one up the primary chain, and
#: the root that chain ends at. On nodes only: Kùzu 0.11.3 fails every later update of a
#: lineage relation's properties on the full graph once they have been updated and the
#: database reopened (KU_UNREACHABLE in csr_node_group.cpp), so per-edge verdicts stay in the
#: audit's stored result
DERIVED_MODEL_PROPS: tuple[tuple[str, str], ...] = (
    ("licenseVerdict", "STRING"), ("licenseChainVerdict", "STRING"), ("familyRoot", "STRING"))

_REPO_COMMON = (("id", "STRING"), ("author", "STRING"), ("createdAt", "TIMESTAMP"),
                ("lastModified", "TIMESTAMP"), ("likes", "INT64"))

NODES: tuple[NodeSpec, ...] = (
    NodeSpec(Label.MODEL, _REPO_COMMON + (
        ("downloads", "INT64"), ("pipelineTag", "STRING"), ("libraryName", "STRING"),
        ("tags", "STRING[]"), ("gated", "STRING"), ("parameters", "INT64"),
        ("license", "STRING"), ("cardText", "STRING"), ("stub", "BOOLEAN"))
        + DERIVED_MODEL_PROPS,
        "A model repo. createdAt is null where the Hub back-filled 2022-03-02; stub=true for a "
        "parent named by a base_model tag that is not (yet) a known model."),
    NodeSpec(Label.DATASET, _REPO_COMMON + (
        ("downloads", "INT64"), ("tags", "STRING[]"), ("gated", "STRING"),
        ("license", "STRING"), ("description", "STRING"), ("stub", "BOOLEAN")),
        "A dataset repo; stub=true when only referenced by a dataset: tag."),
    NodeSpec(Label.SPACE, _REPO_COMMON + (("sdk", "STRING"), ("stub", "BOOLEAN")),
             "A Space (demo app)."),
    NodeSpec(Label.PAPER, (("id", "STRING"), ("title", "STRING")),
             "An arXiv paper, id = arXiv id (e.g. 2106.09685)."),
    NodeSpec(Label.COLLECTION, (("id", "STRING"), ("title", "STRING"), ("owner", "STRING")),
             "A Hub collection (slug)."),
    NodeSpec(Label.USER, (("id", "STRING"),), "A user account (namespace)."),
    NodeSpec(Label.ORGANIZATION, (("id", "STRING"),), "An organisation namespace."),
    NodeSpec(Label.TASK, (("id", "STRING"),), "A pipeline tag / task category."),
    NodeSpec(Label.LIBRARY, (("id", "STRING"),), "A library (transformers, diffusers, …)."),
    NodeSpec(Label.LICENSE, (("id", "STRING"),), "A licence id (apache-2.0, mit, …)."),
    NodeSpec(Label.INGEST_RUN, (
        ("id", "STRING"), ("source", "STRING"), ("startedAt", "TIMESTAMP"),
        ("endedAt", "TIMESTAMP"), ("status", "STRING"), ("counts", "STRING"),
        ("rejects", "STRING"), ("watermark", "TIMESTAMP"), ("mode", "STRING"),
        ("cursor", "INT64"), ("since", "TIMESTAMP"), ("recordLimit", "INT64")),
        "One ingest run; counts and rejects are JSON objects; cursor = source records done."),
)

_LINEAGE_PROPS = (("inferred", "BOOLEAN"), ("source", "STRING"))
_M, _D, _S = Label.MODEL, Label.DATASET, Label.SPACE
_AUTHORS = (Label.USER, Label.ORGANIZATION)

RELS: tuple[RelSpec, ...] = (
    RelSpec(Rel.FINETUNE_OF, ((_M, _M),), _LINEAGE_PROPS, "child is a fine-tune of parent"),
    RelSpec(Rel.ADAPTER_OF, ((_M, _M),), _LINEAGE_PROPS, "child is an adapter (LoRA…) on parent"),
    RelSpec(Rel.QUANTIZED_OF, ((_M, _M),), _LINEAGE_PROPS, "child is a quantisation of parent"),
    RelSpec(Rel.MERGE_OF, ((_M, _M),), _LINEAGE_PROPS, "child merges parent (and others)"),
    RelSpec(Rel.DERIVED_FROM, ((_M, _M),), _LINEAGE_PROPS, "base_model link of unknown type"),
    RelSpec(Rel.HAS_TASK, ((_M, Label.TASK), (_D, Label.TASK)), (), "pipeline tag / task"),
    RelSpec(Rel.TRAINED_ON, ((_M, _D),), (), "model lists dataset: in its tags or card"),
    RelSpec(Rel.CITES, ((_M, Label.PAPER), (_D, Label.PAPER)), (), "arxiv: tag"),
    RelSpec(Rel.USES_MODEL, ((_S, _M),), (), "Space runs the model"),
    RelSpec(Rel.USES_DATASET, ((_S, _D),), (), "Space uses the dataset"),
    RelSpec(Rel.PUBLISHED, tuple((a, r) for a in _AUTHORS for r in (_M, _D, _S)), (),
            "namespace owns the repo"),
    RelSpec(Rel.USES_LIBRARY, ((_M, Label.LIBRARY),), (), "library_name"),
    RelSpec(Rel.HAS_LICENSE, ((_M, Label.LICENSE), (_D, Label.LICENSE)), (), "license: tag"),
    RelSpec(Rel.IN_COLLECTION, tuple((x, Label.COLLECTION) for x in (_M, _D, _S, Label.PAPER)),
            (), "item belongs to a collection"),
    RelSpec(Rel.OBSERVED_IN, ((_M, Label.INGEST_RUN),),
            (("downloads", "INT64"), ("likes", "INT64"), ("at", "TIMESTAMP")),
            "downloads/likes of the model as one ingest run saw them (time series)"),
)

NODE_SPECS = {n.label: n for n in NODES}
REL_SPECS = {r.rel: r for r in RELS}
