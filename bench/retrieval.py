"""Benchmark of model search: embedding precisions, index build, query latency, quality.

    HUBATLAS_DB=/tmp/dbfull flock /tmp/hubatlas-heavy.lock python -m bench.retrieval all

Sections (each can run alone; results are appended to bench/out/retrieval.json):

* ``precision`` — fp32 vs bf16 vs ONNX fp32/int8 on a random sample of real model texts:
  texts/s (wall and per CPU-second), cosine with fp32, top-10 agreement with fp32 (search
  queries; texts as queries), and the automatic variant choice. ``--no-amx`` simulates a CPU
  without AMX (e.g. AMD EPYC) by denying the AMX permission to the process.
* ``build`` — the whole index over every model of the graph: read the graph, make texts,
  embed (only what the vector cache lacks; ``--fresh`` uses an empty cache), fit the index.
  With ``--sample N`` only N texts are embedded and the full time is extrapolated (said so).
* ``persist`` — save the fitted index under the generation's folder; size; load time and
  first queries in a fresh process (what the Search page pays after a restart).
* ``latency`` — p50/p95 of top-10 hybrid search (query encoding included) over the full index,
  with and without filters; resident memory.
* ``quality`` — the evaluation harness (`analytics.evaluate`) on the same graph.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"

QUERIES = [
    "sentiment analysis for tweets", "german named entity recognition", "llama 3 8b instruct gguf",
    "text to image stable diffusion xl", "speech recognition whisper small", "code generation",
    "image classification vit", "summarization of news articles", "question answering squad",
    "sentence embeddings multilingual", "chat model 7b quantized 4-bit", "object detection yolo",
    "translation english to french", "japanese text generation", "medical text classification",
    "lora adapter for mistral", "zero-shot classification", "text to speech", "depth estimation",
    "small fast bert for mobile", "reward model", "protein language model",
    "table question answering",
    "spanish sentiment", "controlnet canny", "face recognition", "math reasoning model",
    "embedding model for retrieval", "toxic comment detection", "fill mask roberta",
]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _record(section: str, data: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "retrieval.json"
    try:
        allres = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        allres = {}
    allres[section] = {**data, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path.write_text(json.dumps(allres, indent=1, default=float))


def _table(rows: list[dict], cols: list[str]) -> str:
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in cols]
    line = " | ".join(c.ljust(w) for c, w in zip(cols, widths))
    out = [line, "-+-".join("-" * w for w in widths)]
    for r in rows:
        out.append(" | ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(cols, widths)))
    return "\n".join(out)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


# -- sections --------------------------------------------------------------------------------
def _load_texts(store=None):
    from analytics import model_rows
    from analytics.embeddings import model_texts
    from graph.store import open_store

    store = store or open_store(read_only=True)
    frame = model_rows.model_text_frame(store)
    return frame, model_texts(frame)


def deny_amx() -> None:
    """Simulate a CPU without AMX (e.g. AMD EPYC: AVX-512 with BF16 and VNNI, no AMX) in this
    process and its children: a seccomp filter makes the kernel refuse the AMX permission
    request (arch_prctl ARCH_REQ_XCOMP_PERM), so oneDNN (torch) and onnxruntime fall back to
    their AVX-512 kernels, as they do on such a CPU. Must run before torch is imported."""
    import ctypes
    import struct

    libc = ctypes.CDLL(None, use_errno=True)
    # load nr; if arch_prctl: load arg0; if ARCH_REQ_XCOMP_PERM: EPERM; else allow
    prog = [(0x20, 0, 0, 0), (0x15, 0, 3, 158), (0x20, 0, 0, 16), (0x15, 0, 1, 0x1023),
            (0x06, 0, 0, 0x00050001), (0x06, 0, 0, 0x7FFF0000)]
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog), ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "could not install the no-AMX seccomp filter")
    os.environ["HUBATLAS_BENCH_NO_AMX"] = "1"


def _agreement(q: np.ndarray, v: np.ndarray, ref: np.ndarray, k: int = 10) -> float:
    top = np.argsort(-(q @ v.T), axis=1)[:, :k]
    ref_top = np.argsort(-(q @ ref.T), axis=1)[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(top, ref_top)]))


#: Measured alternatives that are not variants of `TextEncoder` (``precision --experimental``):
#: why they are not is in `analytics.embeddings.AUTO_CANDIDATES`.
EXPERIMENTS = ("bf16-autocast", "torch-int8", "torch-int8-per-tensor", "bf16-L48")


def _experiment(name: str):
    """An encoder for one of `EXPERIMENTS`: bf16 autocast over fp32 weights; the torch Linear
    layers dynamically quantised to int8 (`torch.ao.quantization.quantize_dynamic`, weights
    per output channel or per tensor; VNNI kernels where the CPU has them); bf16 truncated to
    48 tokens."""
    from analytics.embeddings import TextEncoder

    if name == "bf16-L48":
        return TextEncoder(variant="bf16", max_seq_length=48)

    class Experiment(TextEncoder):
        def _load(self):
            if self._st is not None:
                return
            super()._load()
            if name.startswith("torch-int8"):
                import torch
                from torch.ao import quantization as tq

                qc = (tq.default_dynamic_qconfig if name.endswith("per-tensor")
                      else tq.per_channel_dynamic_qconfig)
                self._st = tq.quantize_dynamic(self._st, {torch.nn.Linear: qc}, dtype=torch.qint8)

        def _forward(self, ids, mask):
            if name != "bf16-autocast":
                return super()._forward(ids, mask)
            import torch

            with torch.autocast("cpu", dtype=torch.bfloat16):
                return super()._forward(ids, mask)

    return Experiment(variant="fp32")


def bench_precision(n: int = 2000, n_queries: int = 200, seed: int = 0,
                    experimental: bool = False) -> list[dict]:
    """Each variant on the same real texts: texts/s (wall and per CPU-second, one thread),
    cosine with fp32, and top-10 agreement with fp32 for queries encoded as the search
    encodes them (fp32 ONNX) and for texts as queries (the recommender's case).
    `experimental` adds the `EXPERIMENTS` (int8 torch, bf16 autocast, 48 tokens)."""
    from analytics.embeddings import TextEncoder, amx_usable, choose_variant

    _, texts = _load_texts()
    rng = np.random.default_rng(seed)
    sample = [texts[i] for i in rng.choice(len(texts), n, replace=False)]
    as_queries = QUERIES + [sample[i] for i in rng.choice(n, n_queries - len(QUERIES),
                                                          replace=False)]
    res, rows = {}, []
    for variant in ("fp32", "bf16", "openvino-bf16", "onnx-fp32", "onnx-int8",
                    *(EXPERIMENTS if experimental else ())):
        enc = _experiment(variant) if variant in EXPERIMENTS else TextEncoder(variant=variant)
        enc.encode(sample[:64])  # load, export, warm up
        t0, c0 = time.perf_counter(), time.process_time()
        vecs = enc.encode(sample)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        t1 = time.perf_counter()
        for q in QUERIES:
            enc.encode([q])
        q_ms = (time.perf_counter() - t1) / len(QUERIES) * 1000
        res[variant] = vecs
        rows.append({"variant": variant, "texts_per_s": n / dt, "texts_per_cpu_s": n / dc,
                     "query_encode_ms": q_ms})
    qv = TextEncoder(variant="onnx-fp32").encode(QUERIES)
    ref = res["fp32"]
    for row in rows:
        v = res[row["variant"]]
        cos = (v * ref).sum(1)
        own_q = v[[sample.index(t) for t in as_queries[len(QUERIES):]]]
        ref_q = ref[[sample.index(t) for t in as_queries[len(QUERIES):]]]
        doc = np.mean([len(set(np.argsort(-(a @ v.T))[1:11]) & set(np.argsort(-(b @ ref.T))[1:11]))
                       / 10 for a, b in zip(own_q, ref_q)])
        row.update({"cos_mean": float(cos.mean()), "cos_min": float(cos.min()),
                    "agree@10_queries": _agreement(qv, v, ref), "agree@10_texts": float(doc),
                    "speedup_cpu": row["texts_per_cpu_s"] / rows[0]["texts_per_cpu_s"]})
    choice = choose_variant(refresh=True)
    amx = "AMX usable" if amx_usable() else "AMX not usable" + (
        " (denied by --no-amx: simulates a CPU without AMX)"
        if os.environ.get("HUBATLAS_BENCH_NO_AMX") else "")
    print(f"\nEmbedding precision ({n} real model texts, {len(QUERIES)} search queries and "
          f"{n_queries - len(QUERIES)} texts as queries, max_seq_length 64, one thread per "
          f"process; {amx}; machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
          f"cores: per-CPU-second rates are the ones to compare):")
    print(_table(rows, ["variant", "texts_per_s", "texts_per_cpu_s", "speedup_cpu", "cos_mean",
                        "cos_min", "agree@10_queries", "agree@10_texts", "query_encode_ms"]))
    print(f"automatic choice: {choice.describe()}")
    _record("precision_no_amx" if os.environ.get("HUBATLAS_BENCH_NO_AMX") else "precision",
            {"n": n, "rows": rows, "choice": choice.__dict__, "amx": amx})
    return rows


def bench_build(*, fresh: bool = False, sample: int | None = None) -> dict:
    from analytics.embeddings import TextEncoder, embed_models
    from analytics.retrieval import HybridSearch
    from graph.store import db_root

    t0 = time.perf_counter()
    frame, texts = _load_texts()
    t_read = time.perf_counter() - t0
    enc = TextEncoder()
    root = Path(tempfile.mkdtemp(prefix="ra-bench-")) if fresh else db_root()
    out = {"models": len(frame), "variant": enc.key, "read_graph_and_texts_s": t_read}
    try:
        if sample:
            rng = np.random.default_rng(0)
            idx = np.sort(rng.choice(len(texts), sample, replace=False))
            t1 = time.perf_counter()
            enc.encode([texts[i] for i in idx])
            dt = time.perf_counter() - t1
            out.update({"embedded": sample, "texts_per_s": sample / dt,
                        "embed_s_extrapolated": len(texts) / (sample / dt),
                        "note": f"embedding measured on {sample} texts and extrapolated"})
            return out
        t1 = time.perf_counter()
        vectors, info = embed_models(frame["id"], texts, enc, root=root, log_every=1)
        out.update({"embed_s": time.perf_counter() - t1,
                    **{f"embed_{k}": v for k, v in info.items()}})
        t2 = time.perf_counter()
        HybridSearch().fit(frame, vectors)
        out["index_fit_s"] = time.perf_counter() - t2
        out["total_s"] = time.perf_counter() - t0
        out["peak_rss_mb"] = _rss_mb()
    finally:
        if fresh:
            shutil.rmtree(root, ignore_errors=True)
        print("\nIndex build:")
        print(_table([{"step": k, "value": v} for k, v in out.items()], ["step", "value"]))
        _record("build" if not sample else "build_sample", out)
    return out


def bench_persist() -> dict:
    """Save the fitted index under the generation's folder, then load it in a fresh process
    (as the Search page does after a restart) and time the load and the first queries."""
    import subprocess

    from analytics.retrieval import build_search, search_folder

    folder = search_folder()
    t0 = time.perf_counter()
    search = build_search()
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    search.save(folder)
    save_s = time.perf_counter() - t1
    files = {p.name: p.stat() for p in folder.iterdir()}
    size = sum(st.st_size for st in files.values())
    linked = sum(st.st_size for st in files.values() if st.st_nlink > 1)
    del search
    probe = ("import time, json; t = time.perf_counter(); "
             "from analytics.retrieval import HybridSearch; "
             f"s = HybridSearch.load({str(folder)!r}); t_load = time.perf_counter() - t; "
             "t2 = time.perf_counter(); s.search('whisper small', k=10); "
             "t_first = time.perf_counter() - t2; t3 = time.perf_counter(); "
             "s.search('sentiment analysis for tweets', k=10); "
             "t_second = time.perf_counter() - t3; "
             "print(json.dumps({'import_and_load_s': t_load, 'first_query_s': t_first, "
             "'second_query_s': t_second}))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                             env=env, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    res = {"folder": str(folder), "build_from_cache_s": build_s, "save_s": save_s,
           "files": len(files), "size_mb": size / 2**20,
           "hard_linked_from_vector_cache_mb": linked / 2**20, "load_runs": runs}
    print("\nSaved search index:")
    print(_table([{"step": k, "value": v} for k, v in res.items() if k != "load_runs"],
                 ["step", "value"]))
    print(_table(runs, ["import_and_load_s", "first_query_s", "second_query_s"]))
    _record("persist", res)
    return res


def bench_latency(n_repeat: int = 3) -> dict:
    from analytics.retrieval import SearchFilters, open_search

    t0 = time.perf_counter()
    search = open_search()
    load_s = time.perf_counter() - t0
    rss = _current_rss_mb()
    cases = {"no filter": None,
             "task=text-generation": SearchFilters(task="text-generation"),
             "library=transformers, created>=2024-01-01":
                 SearchFilters(library="transformers", created_after="2024-01-01"),
             "quantized only": SearchFilters(quantized=True)}
    rows = []
    for name, flt in cases.items():
        search.search(QUERIES[0], k=10, filters=flt)  # warm
        times = []
        for _ in range(n_repeat):
            for q in QUERIES:
                t = time.perf_counter()
                search.search(q, k=10, filters=flt)
                times.append((time.perf_counter() - t) * 1000)
        rows.append({"case": name, "queries": len(times), "p50_ms": float(np.percentile(times, 50)),
                     "p95_ms": float(np.percentile(times, 95)), "max_ms": float(max(times))})
    load_avg = os.getloadavg()
    print(f"\nQuery latency, top-10 over {search.n_models_:,} models "
          f"(load {load_s:.1f}s from the vector cache, RSS after load {rss:,.0f} MB; "
          f"machine load average {load_avg[0]:.1f} on {os.cpu_count()} cores — other "
          f"processes share them):")
    print(_table(rows, ["case", "queries", "p50_ms", "p95_ms", "max_ms"]))
    out = {"models": search.n_models_, "load_s": load_s, "rss_after_load_mb": rss,
           "load_average": load_avg,
           "peak_rss_mb": _rss_mb(), "rows": rows}
    _record("latency", out)
    return out


def bench_quality(sample: int = 2000, seed: int = 0) -> dict:
    from analytics.evaluate import evaluate, format_report

    res = evaluate(sample=sample, seed=seed)
    print(format_report(res))
    _record("quality", res)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.retrieval")
    p.add_argument("section", choices=["precision", "build", "persist", "latency", "quality",
                                        "all"])
    p.add_argument("--fresh", action="store_true", help="build into an empty vector cache")
    p.add_argument("--sample", type=int, default=None,
                   help="build: embed only N texts and extrapolate")
    p.add_argument("--n", type=int, default=2000, help="precision: texts in the sample")
    p.add_argument("--experimental", action="store_true",
                   help="precision: also int8 torch, bf16 autocast and 48-token truncation")
    p.add_argument("--no-amx", action="store_true",
                   help="simulate a CPU without AMX (seccomp denies the AMX permission)")
    a = p.parse_args(argv)
    if a.no_amx:
        deny_amx()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.section in ("precision", "all"):
        bench_precision(n=a.n, experimental=a.experimental)
    if a.section in ("build", "all"):
        bench_build(fresh=a.fresh, sample=a.sample)
    if a.section in ("persist", "all"):
        bench_persist()
    if a.section in ("latency", "all"):
        bench_latency()
    if a.section in ("quality", "all"):
        bench_quality()
    return 0


if __name__ == "__main__":
    sys.exit(main())
