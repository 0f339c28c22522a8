"""Words of the Hub that several layers read, defined once: how a quantised model is
recognised (ingest types untyped lineage links with it, search filters and ranks by it).

Relation names and their graph types live in `graph.schema` (`LINEAGE_RELS`).
"""
from __future__ import annotations

import re
from typing import Iterable

#: tags that mark a quantised model (formats, quantisation libraries, bit widths)
QUANT_TAGS = frozenset({
    "gguf", "gptq", "awq", "exl2", "4-bit", "8-bit", "bitsandbytes", "quantized", "autoround",
    "hqq", "aqlm", "ggml", "fp8", "compressed-tensors", "bnb", "mlx"})

#: quantisation markers in a repo name (after the namespace) or a tag: formats, `4bit`,
#: `int8`, llama.cpp levels (`q4_k_m`, `q8_0`), `-mlx`, `imatrix`…
QUANT_NAME = re.compile(
    r"(gguf|ggml|gptq|awq|exl2|bnb|[-_.]?\d(\.\d+)?bits?\b|\b[48]bit|int[48]|fp8|nf4|q[2-8]_k|"
    r"q[2-8]_[01]|\bquant|[-_]mlx\b|imatrix|hqq|aqlm)", re.I)


def looks_quantized(repo_id: str, tags: Iterable[str] = ()) -> bool:
    """True when the repo's name or tags say it is a quantisation (the namespace is not read:
    `TheBloke/…` is a person, not a format)."""
    name = (repo_id or "").split("/", 1)[-1]
    if QUANT_NAME.search(name):
        return True
    return any(str(t).lower() in QUANT_TAGS or QUANT_NAME.search(str(t)) for t in tags)
