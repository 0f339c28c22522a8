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
    ACCOUNT = "Account"  # a namespace: a user or an organisation (accountType)
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


#: `IngestRun.source` of a graph loaded from the shipped first-run sample (`ingest.seed`):
#: pages label such a graph "sample data"
SAMPLE_SOURCE_PREFIX = "sample:"

#: `Account.accountType`: what the Hub's account pages say a namespace is. Listing records carry
#: no account type, so a namespace is UNKNOWN until the Hub is asked (`ingest.accounts`); one
#: the Hub has no page for keeps UNKNOWN with `accountCheckedAt` set. Never guessed.
ACCOUNT_ORGANIZATION = "organization"
ACCOUNT_USER = "user"
ACCOUNT_UNKNOWN = "unknown"
ACCOUNT_TYPES: tuple[str, ...] = (ACCOUNT_ORGANIZATION, ACCOUNT_USER, ACCOUNT_UNKNOWN)

#: properties a node known only by a reference is created with, per label (both load paths)
REF_DEFAULTS: dict[Label, dict[str, str]] = {Label.ACCOUNT: {"accountType": ACCOUNT_UNKNOWN}}

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


_REPO_COMMON = (("id", "STRING"), ("author", "STRING"), ("createdAt", "TIMESTAMP"),
                ("lastModified", "TIMESTAMP"), ("likes", "INT64"))

#: Model properties the scheduled job derives after each ingest (`analytics.pipeline`), so
#: Cypher can ask for them: `MATCH (m:Model) WHERE m.forecast_12m > 100 RETURN m.id`.
#: Null for models without a derivative series. Forecasts are cumulative counts (median and 80%
#: band) h months after forecast_as_of. Documented in docs/schema.md.
GROWTH_PROPERTIES: tuple[tuple[str, str], ...] = (
    ("derivatives_observed", "INT64"),  # direct derivatives with a known date, up to forecast_as_of
    ("forecast_as_of", "TIMESTAMP"),  # end of the observed months the forecast starts from
    ("growth_lambda", "DOUBLE"),  # WSB fitness λ (paper form, m = 100)
    ("growth_mu", "DOUBLE"),  # WSB immediacy μ (log-months)
    ("growth_sigma", "DOUBLE"),  # WSB longevity σ
    ("growth_c_inf", "DOUBLE"),  # WSB ultimate derivative count c∞ = 100 (e^λ − 1)
    ("growth_r2", "DOUBLE"), ("growth_rmsle", "DOUBLE"),  # how well the WSB curve fits
    ("growth_fit_ok", "BOOLEAN"),  # the WSB fit passed every check: its parameters mean something
    ("growth_fit_flags", "STRING"),  # ';'-joined checks the WSB fit failed
    ("forecast_method", "STRING"),  # which method made the forecasts below
    ("forecast_3m", "DOUBLE"), ("forecast_3m_low", "DOUBLE"), ("forecast_3m_high", "DOUBLE"),
    ("forecast_6m", "DOUBLE"), ("forecast_6m_low", "DOUBLE"), ("forecast_6m_high", "DOUBLE"),
    ("forecast_12m", "DOUBLE"), ("forecast_12m_low", "DOUBLE"), ("forecast_12m_high", "DOUBLE"),
)

#: Model properties of the licence audit (`analytics.licences`), derived by the same job: the
#: verdict of a model's licence against its parents' (the worst over its parents: same,
#: compatible, unstated, unknown, missing, conflict), the worst verdict up its primary chain
#: (the most downloaded parent at each step), and the root that chain ends at. Null for models
#: without a parent. Per-edge verdicts stay in the stored audit (Kùzu 0.11.3 fails later
#: updates of lineage relation properties once updated and reopened: KU_UNREACHABLE,
#: csr_node_group.cpp). Documented in docs/schema.md and docs/licences.md.
LICENCE_PROPERTIES: tuple[tuple[str, str], ...] = (
    ("licenseVerdict", "STRING"), ("licenseChainVerdict", "STRING"), ("familyRoot", "STRING"))

NODES: tuple[NodeSpec, ...] = (
    NodeSpec(Label.MODEL, _REPO_COMMON + (
        ("downloads", "INT64"), ("pipelineTag", "STRING"), ("libraryName", "STRING"),
        ("tags", "STRING[]"), ("gated", "STRING"), ("parameters", "INT64"),
        ("license", "STRING"), ("cardText", "STRING"), ("stub", "BOOLEAN"),
        ("downloadsAllTime", "INT64"), ("trendingScore", "DOUBLE"),
        ("childrenModelCount", "INT64"))
        + GROWTH_PROPERTIES + LICENCE_PROPERTIES,
        "A model repo. createdAt is null where the Hub back-filled 2022-03-02; stub=true for a "
        "parent named by a base_model tag that is not (yet) a known model. downloads is the "
        "Hub's 30-day count, downloadsAllTime the all-time one (live Hub only)."),
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
    NodeSpec(Label.ACCOUNT, (("id", "STRING"), ("accountType", "STRING"),
                             ("accountCheckedAt", "TIMESTAMP")),
             "A namespace (HuggingKG's User and Organization): accountType is organization, "
             "user or unknown, as the Hub's account pages say; accountCheckedAt is when the Hub "
             "last answered for it (null: not asked yet)."),
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
    RelSpec(Rel.PUBLISHED, tuple((Label.ACCOUNT, r) for r in (_M, _D, _S)), (),
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
