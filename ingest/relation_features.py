"""Features for typing a `base_model` link (finetune / adapter / quantized / merge).

Everything here works on whole frames at once (one row per link, one row per model), so a
snapshot of 130k links is featurised in a few vectorised passes, never record by record.

A link frame (`link_frame`) holds, per child → parent link whose relation the Hub did not
record: `child`, `parent`, `author`, `tags` (the child's tags, typed `base_model:<rel>:` tags
removed), `library`, `pipeline`, `files` (the child's file names, or None when the record did
not list them: listing records never do), `n_parents` (parents the Hub validated into tags),
`n_card_parents` (parents named only in the card). Every feature exists for listing-shaped
records (id, tags, library, pipeline tag): file features are simply absent there.

Features, as named tokens (`t:` tag, `l:` library, `p:` pipeline tag, `n:` a token of the child's
name that is not in the parent's name, `f:` a file kind) and numbers (parent counts, repo-id
tags as mergekit writes them, whether the child's name contains the parent's, and the author's
habits: how many models the account has and which share of them look quantised, like
adapters, like merges).
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ingest.records import ModelRecord

#: the four types the Hub records; `unknown` is never predicted
RELATION_CLASSES: tuple[str, ...] = ("finetune", "adapter", "quantized", "merge")

_SKIP_TAG_PREFIXES = ("base_model:", "dataset:", "arxiv:", "license:", "region:", "doi:",
                      "autotrain_compatible", "endpoints_compatible")
_TYPED_TAG = re.compile(r"^base_model:(?:finetune|adapter|quantized|merge):")

# Name normalisation before splitting into tokens: quantisation spellings become one token.
_NAME_RULES: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(r"i?q[1-8]_k(?:_[sxml]+)?"), " qk "),
    (re.compile(r"i?q[1-8]_[0-9](?:_[0-9])?"), " q0 "),
    (re.compile(r"iq[1-4]_?(?:xxs|xs|s|m|nl)"), " qk "),
    (re.compile(r"\b\d+(?:\.\d+)?[-_]?bpw\b"), " bpw "),
    (re.compile(r"\bh\d+(?:\.\d+)?[-_]?bpw\b"), " bpw "),
    (re.compile(r"\bw\d+a\d+\b"), " wxay "),
    (re.compile(r"\b(\d{1,2})[-_ ]?bits?\b"), r" \1bit "),
    (re.compile(r"\bint[-_]?([48])\b"), r" int\1 "),
    (re.compile(r"\bq([48])f(16|32)(?:_\d)?\b"), " mlcq "),
)
_NAME_SPLIT = re.compile(r"[^a-z0-9]+")

# Evidence used for the author's habits (label-free, from the author's own models).
_QUANT_EVIDENCE = re.compile(
    r"(?:^|[\s,])(?:gguf|gptq|awq|exl2|ggml|bitsandbytes|4-bit|8-bit|quantized|mlx|hqq|aqlm|"
    r"fp8|compressed-tensors)(?:$|[\s,])|gguf|gptq|awq|exl2|ggml|[-_.](?:[2-8])bit|q[2-8]_k|"
    r"\bbnb\b|int[48]|imatrix|bpw|mlx|hqq|aqlm|fp8", re.I)
_ADAPTER_EVIDENCE = re.compile(r"(?:^|[\s,])(?:peft|lora|qlora|adapter-transformers|"
                               r"textual_inversion|template:sd-lora|lycoris)(?:$|[\s,])|"
                               r"lora|adapter", re.I)
_MERGE_EVIDENCE = re.compile(r"(?:^|[\s,])(?:mergekit|merge|lazymergekit|moerge)(?:$|[\s,])|"
                             r"merge|slerp|[-_]ties\b|[-_]dare\b|passthrough", re.I)

#: Evidence groups: tags (lower-case) and name tokens that mean the same thing to the Hub's own
#: rules, so a spelling no training family used still counts (a held-out family's LoRA tag).
EVIDENCE_TAGS: dict[str, frozenset[str]] = {
    "ev_adapter": frozenset({"peft", "lora", "qlora", "adapter-transformers", "textual_inversion",
                             "controlnet", "custom-diffusion", "template:sd-lora", "lycoris",
                             "t2i-adapter", "ip-adapter", "loha", "lokr", "dora", "ia3"}),
    "ev_quant": frozenset({"gguf", "gptq", "awq", "exl2", "4-bit", "8-bit", "bitsandbytes",
                           "quantized", "ggml", "fp8", "nf4", "hqq", "aqlm", "compressed-tensors",
                           "quanto", "llamafile", "imatrix", "gguf-my-repo", "llama-cpp",
                           "exllamav2", "autoround", "int4", "int8", "mlc-llm", "openvino",
                           "mlx", "mlx-my-repo", "quantization", "onnx"}),
    "ev_merge": frozenset({"mergekit", "merge", "lazymergekit", "moerge", "frankenmerge"}),
    "ev_train": frozenset({"trl", "sft", "dpo", "orpo", "kto", "unsloth", "autotrain",
                           "generated_from_trainer", "axolotl", "llama-factory",
                           "alignment-handbook", "dreambooth", "diffusers-training"}),
}
EVIDENCE_NAME_TOKENS: dict[str, frozenset[str]] = {
    "ev_adapter_name": frozenset({"lora", "qlora", "adapter", "adapters", "peft", "loha",
                                  "lokr", "dora", "ia3", "textual", "inversion", "controlnet"}),
    "ev_quant_name": frozenset({"gguf", "ggml", "gptq", "awq", "exl2", "bnb", "qk", "q0", "bpw",
                                "wxay", "mlcq", "2bit", "3bit", "4bit", "5bit", "6bit", "8bit",
                                "int4", "int8", "fp8", "nf4", "hqq", "aqlm", "quant", "quantized",
                                "quantised", "imatrix", "mlx", "mlc", "onnx", "openvino", "ov",
                                "smashed", "gguf_q4", "iq"}),
    "ev_merge_name": frozenset({"merge", "merged", "slerp", "ties", "dare", "passthrough",
                                "frankenmerge", "moe", "mix", "mixture"}),
    "ev_train_name": frozenset({"sft", "dpo", "orpo", "kto", "ft", "finetune", "finetuned",
                                "tuned", "instruct", "chat", "it", "trained"}),
}
#: whole-name precision tokens: "16bit"/"bf16" builds are re-saved finetunes, not quantisations
_FULL_PRECISION = frozenset({"16bit", "32bit", "bf16", "fp16", "f16", "fp32", "f32"})
EVIDENCE_COLUMNS: tuple[str, ...] = (*EVIDENCE_TAGS, *EVIDENCE_NAME_TOKENS, "ev_full_precision",
                                     "ev_adapter_file", "ev_quant_file", "ev_merge_file")
_FILE_EVIDENCE = {"ev_adapter_file": {"adapter_config", "adapter_model", "lora_weights",
                                      "textual_inversion"},
                  "ev_quant_file": {"gguf", "ggml", "quantize_config", "exl2_measurement", "mlc"},
                  "ev_merge_file": {"mergekit_config"}}

HABIT_COLUMNS: tuple[str, ...] = ("author_log_models", "author_quant_share",
                                  "author_adapter_share", "author_merge_share",
                                  "author_derived_share")
NUMERIC_COLUMNS: tuple[str, ...] = (
    "n_parents", "n_card_parents", "n_id_tags", "n_tags", "same_author", "name_has_parent",
    "parent_name_quant", *EVIDENCE_COLUMNS, *HABIT_COLUMNS)


def _file_kind(name: str) -> str | None:
    base = name.rsplit("/", 1)[-1].lower()
    if base == "adapter_config.json":
        return "adapter_config"
    if base.startswith("adapter_model."):
        return "adapter_model"
    if base.endswith(".gguf"):
        return "gguf"
    if ".ggml" in base or base.endswith(".ggmlv3.bin"):
        return "ggml"
    if base in ("quantize_config.json", "quant_config.json", "quantization_config.json"):
        return "quantize_config"
    if base == "measurement.json":
        return "exl2_measurement"
    if base == "mlc-chat-config.json" or base.startswith("params_shard_"):
        return "mlc"
    if base.endswith(".onnx"):
        return "onnx"
    if base in ("mergekit_config.yml", "mergekit_config.yaml"):
        return "mergekit_config"
    if base.startswith("pytorch_lora_weights") or "lora" in base:
        return "lora_weights"
    if base.startswith("learned_embeds"):
        return "textual_inversion"
    if base == "model_index.json":
        return "diffusers_pipeline"
    if base.endswith(".safetensors"):
        return "safetensors"
    if base.endswith((".bin", ".pt", ".pth", ".ckpt")):
        return "torch_weights"
    if base == "config.json":
        return "config"
    return None


def _name_part(ids: pa.Array) -> pa.Array:
    """Each id's part after its last `/` (the whole id when it has none)."""
    return pc.replace_substring_regex(ids, r"(?s)^.*/", "")


def _normalised_names(ids: pd.Series) -> pa.Array:
    """Each id's name (after its last `/`), lower-case, quantisation spellings normalised
    (`_NAME_RULES`). By Arrow's RE2 where a name is ASCII; Python's `lower` and `re` (whose
    `\\b` and `\\d` are Unicode-aware) elsewhere, so every name gets exactly what `re` gives."""
    names = _name_part(pa.array(ids.astype(str), pa.string(), from_pandas=True))
    text = pc.ascii_lower(names)
    for pattern, repl in _NAME_RULES:
        text = pc.replace_substring_regex(text, pattern.pattern, repl)
    other = np.flatnonzero(~pc.string_is_ascii(names).to_numpy(zero_copy_only=False))
    if len(other):
        slow = pd.Series(names.take(pa.array(other)).to_pylist(), dtype=object).str.lower()
        for pattern, repl in _NAME_RULES:
            slow = slow.str.replace(pattern, repl, regex=True)
        at = np.arange(len(names))
        at[other] = len(names) + np.arange(len(other))
        text = pa.concat_arrays([text, pa.array(slow.tolist(), pa.string())]).take(pa.array(at))
    return text


def _name_tokens(names: pd.Series) -> pd.DataFrame:
    """Long frame (row, tok): the non-empty tokens of each normalised name."""
    parts = pc.split_pattern_regex(_normalised_names(names), _NAME_SPLIT.pattern)
    tok, row = pc.list_flatten(parts), pc.list_parent_indices(parts)
    keep = pc.not_equal(tok, "")
    return pd.DataFrame({"row": row.filter(keep).to_numpy().astype(np.int64),
                         "tok": tok.filter(keep).to_numpy(zero_copy_only=False)})


def name_token_frame(child: pd.Series, parent: pd.Series) -> pd.DataFrame:
    """Long frame (row, tok): tokens of each child's name (quantisation spellings normalised,
    bare numbers dropped) that its parent's name does not have."""
    own = _name_tokens(child.reset_index(drop=True))
    own = own[~own["tok"].str.isdigit()]
    # parents repeat (130k links name 15k parents): tokenise each distinct one once
    codes, uniques = pd.factorize(parent.reset_index(drop=True))
    per_parent = _name_tokens(pd.Series(uniques)).rename(columns={"row": "code"})
    per_parent = per_parent.drop_duplicates()
    theirs = pd.DataFrame({"row": np.arange(len(codes)), "code": codes}).merge(
        per_parent, on="code")[["row", "tok"]]
    merged = own.merge(theirs, on=["row", "tok"], how="left", indicator=True)
    out = merged.loc[merged["_merge"] == "left_only", ["row", "tok"]]
    return out.drop_duplicates().reset_index(drop=True)


def _strip(value: str) -> str:
    return value.rsplit("/", 1)[-1].lower().replace("_", "-")


def _contains(text: pa.Array, pattern: re.Pattern) -> np.ndarray:
    """`pattern` (case-insensitive) found in each string: Arrow's RE2, ~10x Python's re on
    760k records, same matches for these patterns (no look-arounds or back-references)."""
    return pc.match_substring_regex(text, pattern.pattern, ignore_case=True).to_numpy(
        zero_copy_only=False).astype(bool)


def _strings(values: pd.Series) -> pa.Array:
    """A frame's string column as an Arrow array, nulls as "" (no Python string each)."""
    return pc.fill_null(pa.array(values, pa.string(), from_pandas=True), "")


def _habit_flags(ids: pd.Series, tags_text: pd.Series, library: pd.Series
                 ) -> dict[str, np.ndarray]:
    names = _name_part(_strings(ids))
    tags = _strings(tags_text)
    text = pc.binary_join_element_wise(names, tags, " ")
    peft = pc.equal(pc.utf8_lower(_strings(library)), "peft").to_numpy(zero_copy_only=False)
    return {
        "quant": _contains(text, _QUANT_EVIDENCE),
        "adapter": peft.astype(bool) | _contains(text, _ADAPTER_EVIDENCE),
        "merge": _contains(text, _MERGE_EVIDENCE),
        "derived": pc.match_substring(tags, "base_model:").to_numpy(
            zero_copy_only=False).astype(bool),
    }


def _tags_text(tags: pd.Series) -> pd.Series:
    return tags.map(lambda t: " ".join(t) if t is not None and len(t) else "")


def author_habits(models: pd.DataFrame) -> pd.DataFrame:
    """Per author: log(1 + models) and the share of the author's models that look quantised,
    like adapters, like merges, or declare a base model (from ids, tags and libraries only).

    `models` needs columns `id`, `author`, `tags` (or `tags_text`: the tags joined by spaces),
    `library`; returns a frame indexed by author.
    """
    if models.empty:
        return pd.DataFrame(columns=list(HABIT_COLUMNS), dtype=float)
    text = models["tags_text"] if "tags_text" in models else _tags_text(models["tags"])
    flags = _habit_flags(models["id"], text, models["library"])
    frame = pd.DataFrame({"author": models["author"].fillna("").to_numpy(), **flags})
    frame = frame[frame["author"] != ""]
    grouped = frame.groupby("author", sort=False)
    n = grouped.size()
    shares = grouped[["quant", "adapter", "merge", "derived"]].mean()
    return pd.DataFrame({
        "author_log_models": np.log1p(n.to_numpy(float)),
        "author_quant_share": shares["quant"].to_numpy(float),
        "author_adapter_share": shares["adapter"].to_numpy(float),
        "author_merge_share": shares["merge"].to_numpy(float),
        "author_derived_share": shares["derived"].to_numpy(float),
    }, index=n.index)


def model_frame(records: Iterable[ModelRecord]) -> pd.DataFrame:
    """id, author, tags, library of every model record (the input of `author_habits`)."""
    rows = [(r.id, r.author, r.tags, r.library) for r in records]
    return pd.DataFrame(rows, columns=["id", "author", "tags", "library"])


def untyped_tags(tags: Sequence[str]) -> tuple[str, ...]:
    """The tags without the Hub's typed `base_model:<rel>:` ones (what July 2024 looked like)."""
    return tuple(t for t in tags if not _TYPED_TAG.match(t))


def link_frame(records: Iterable[ModelRecord], *, only_inferred: bool = True) -> pd.DataFrame:
    """One row per child → parent link of the records (by default only the links whose relation
    was inferred): the columns described in the module docstring, plus `index` (the link's
    position in its record's `base_models`) and `record` (the record's position)."""
    rows = []
    for pos, r in enumerate(records):
        links = r.base_models
        if not links:
            continue
        tag_parents = sum(1 for b in links if b.source in ("typed_tag", "tag", "api"))
        card_parents = sum(1 for b in links if b.source == "card")
        files = r.files if r.files else None
        tags = untyped_tags(r.tags)
        for i, b in enumerate(links):
            if only_inferred and not b.inferred:
                continue
            rows.append((pos, i, r.id, b.parent, r.author, tags, r.library, r.pipeline_tag,
                         files, tag_parents, card_parents))
    return pd.DataFrame(rows, columns=["record", "index", "child", "parent", "author", "tags",
                                       "library", "pipeline", "files", "n_parents",
                                       "n_card_parents"])


def link_tokens(links: pd.DataFrame) -> pd.DataFrame:
    """Long frame (row = position of the link in `links`, token) of every token feature."""
    parts = []
    n = len(links)
    rows = np.arange(n)
    tags = pd.DataFrame({"row": rows, "tok": links["tags"].to_numpy()}).explode("tok")
    tags = tags.dropna(subset=["tok"])
    tok = tags["tok"].astype(str).str.lower()
    keep = ~tok.str.startswith(_SKIP_TAG_PREFIXES) & ~tok.str.contains("/", regex=False)
    parts.append(pd.DataFrame({"row": tags["row"].to_numpy()[keep.to_numpy()],
                               "tok": ("t:" + tok[keep]).to_numpy()}))
    for col, prefix in (("library", "l:"), ("pipeline", "p:")):
        values = links[col]
        mask = values.notna().to_numpy()
        tok = (prefix + values[mask].astype(str).str.lower()).to_numpy()
        parts.append(pd.DataFrame({"row": rows[mask], "tok": tok}))
    name_frame = name_token_frame(links["child"], links["parent"])
    parts.append(pd.DataFrame({"row": name_frame["row"].to_numpy(),
                               "tok": ("n:" + name_frame["tok"].astype(str)).to_numpy()}))
    files = pd.DataFrame({"row": rows, "tok": links["files"].to_numpy()}).explode("tok")
    files = files.dropna(subset=["tok"])
    if len(files):
        kinds = files["tok"].astype(str).map(_file_kind)
        mask = kinds.notna().to_numpy()
        parts.append(pd.DataFrame({"row": files["row"].to_numpy()[mask],
                                   "tok": ("f:" + kinds[mask]).to_numpy()}))
    out = pd.concat(parts, ignore_index=True)
    return out.drop_duplicates(ignore_index=True)


def _evidence(tokens: pd.DataFrame, n: int) -> list[np.ndarray]:
    """One 0/1 column per `EVIDENCE_COLUMNS` entry, from the long token frame (each token is
    a one-letter kind, `:`, its value)."""
    tok = pa.array(tokens["tok"].to_numpy(), pa.string())
    row = tokens["row"].to_numpy(int)
    kind, value = pc.utf8_slice_codeunits(tok, 0, 2), pc.utf8_slice_codeunits(tok, 2, 1 << 30)
    out = []

    def column(prefix: str, members: Iterable[str]) -> np.ndarray:
        mask = pc.and_(pc.equal(kind, prefix), pc.is_in(value, pa.array(sorted(members))))
        col = np.zeros(n)
        col[row[mask.to_numpy(zero_copy_only=False)]] = 1.0
        return col

    out += [column("t:", members) for members in EVIDENCE_TAGS.values()]
    out += [column("n:", members) for members in EVIDENCE_NAME_TOKENS.values()]
    out.append(column("n:", _FULL_PRECISION))
    out += [column("f:", members) for members in _FILE_EVIDENCE.values()]
    return out


def link_numeric(links: pd.DataFrame, habits: pd.DataFrame | None,
                 tokens: pd.DataFrame | None = None, *, use_files: bool = True) -> np.ndarray:
    """The numeric features (`NUMERIC_COLUMNS`) of every link, float32; with
    `use_files=False` the file-evidence columns are zero."""
    n = len(links)
    if tokens is None:
        tokens = link_tokens(links)
    if not use_files:
        tokens = tokens[~tokens["tok"].str.startswith("f:")]
    tag_lists = links["tags"]
    n_tags = tag_lists.map(lambda t: 0 if t is None else len(t)).to_numpy(float)
    n_id_tags = tag_lists.map(
        lambda t: 0 if t is None else sum(1 for x in t if "/" in x and ":" not in x)
    ).to_numpy(float)
    child_ns = links["child"].str.split("/", n=1).str[0]
    parent_ns = links["parent"].str.split("/", n=1).str[0]
    has_ns = links["parent"].str.contains("/", regex=False)
    same_author = (has_ns & (child_ns.str.lower() == parent_ns.str.lower())).to_numpy(float)
    child_name = links["child"].map(_strip)
    parent_name = links["parent"].map(_strip)
    name_has_parent = np.fromiter((p in c for c, p in zip(child_name, parent_name)), bool, n)
    codes, uniques = pd.factorize(links["parent"])
    parent_quant = pd.Series(uniques).str.contains(_QUANT_EVIDENCE).to_numpy(float)[codes] \
        if n else np.zeros(0)
    # whether a record lists its files says where it was crawled, not what it is: the
    # file kinds enter only as tokens and evidence
    cols = [links["n_parents"].to_numpy(float), links["n_card_parents"].to_numpy(float),
            n_id_tags, np.log1p(n_tags), same_author,
            name_has_parent.astype(float), parent_quant, *_evidence(tokens, n)]
    if habits is not None and len(habits):
        joined = habits.reindex(links["author"].fillna("").to_numpy())
        for col in HABIT_COLUMNS:
            cols.append(joined[col].fillna(0.0).to_numpy(float))
    else:
        cols.extend(np.zeros(n) for _ in HABIT_COLUMNS)
    return np.column_stack(cols).astype(np.float32) if n else np.zeros((0, len(NUMERIC_COLUMNS)),
                                                                        np.float32)


def feature_matrix(links: pd.DataFrame, vocabulary: Sequence[str],
                   habits: pd.DataFrame | None, *, use_files: bool = True,
                   columns: Sequence[int] | None = None) -> np.ndarray:
    """Dense float32 matrix: one column per vocabulary token (0/1), then `NUMERIC_COLUMNS`
    (file evidence zero unless `use_files`); with `columns` (sorted indices into those),
    only these columns, in that order."""
    n, v = len(links), len(vocabulary)
    width = v + len(NUMERIC_COLUMNS)
    columns = np.arange(width) if columns is None else np.asarray(columns, np.int64)
    X = np.zeros((n, len(columns)), np.float32)
    if n == 0:
        return X
    at = np.full(width, -1, np.int64)  # each feature's column in X, -1 when left out
    at[columns] = np.arange(len(columns))
    tokens = link_tokens(links)
    index = pd.Series(at[:v], index=pd.Index(vocabulary))
    col = tokens["tok"].map(index).to_numpy(float, na_value=-1).astype(np.int64)
    keep = col >= 0
    X[tokens["row"].to_numpy(int)[keep], col[keep]] = 1.0
    numeric = columns[columns >= v]
    X[:, at[numeric]] = link_numeric(links, habits, tokens, use_files=use_files)[:, numeric - v]
    return X


def build_vocabulary(tokens: pd.DataFrame, groups: np.ndarray, *, min_count: int = 3,
                     min_groups: int = 2, exclude_prefixes: tuple[str, ...] = ()) -> list[str]:
    """Tokens seen on at least `min_count` links of at least `min_groups` families: a
    token only one family uses (its own name, say) cannot generalise to unseen families."""
    frame = pd.DataFrame({"tok": tokens["tok"].to_numpy(),
                          "group": np.asarray(groups)[tokens["row"].to_numpy(int)]})
    if exclude_prefixes:
        frame = frame[~frame["tok"].str.startswith(exclude_prefixes)]
    stats = frame.groupby("tok").agg(n=("group", "size"), g=("group", "nunique"))
    keep = stats[(stats["n"] >= min_count) & (stats["g"] >= min_groups)]
    return sorted(keep.index.tolist())


def feature_names(vocabulary: Sequence[str]) -> list[str]:
    return [*vocabulary, *NUMERIC_COLUMNS]

