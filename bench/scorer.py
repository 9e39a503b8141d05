"""Throughput of the BERT classifier: torch fp32 vs onnxruntime fp32 vs onnxruntime int8.

Usage::

    .venv/bin/python bench/scorer.py --model-dir runs/<name>/model [--texts datasets/build/test.jsonl]

The fine-tuned model folder is exported afresh into a temporary folder (fp32 and int8
graphs, the int8 one with the outlier-neuron split calibrated on ``--calibration`` as
`jingwang export` does), then all three backends score the same normalised texts at batch
1 and batch 32, each with the same number of threads, after a warm-up pass, in
``--rounds`` passes that take turns (medians reported). Batches are formed the same way for
every backend (texts sorted by length, padded per batch). Prints a Rich table with ratios
against torch fp32 and writes bench/results/scorer.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "scorer.json"


def _texts(path: Path, limit: int) -> list[str]:
    from models.normalize import normalize
    from training.dataset import load_jsonl

    rows = load_jsonl(path)[:limit]
    return [normalize(row["text"]).text for row in rows]


def _torch_runner(model_dir: Path, threads: int, batch_size: int):
    import torch

    from training.finetune import _pad, load_classifier

    torch.set_num_threads(threads)
    model, tokenizer, meta = load_classifier(model_dir)
    pad_id = tokenizer.pad_token_id

    def run(texts: list[str]) -> np.ndarray:
        ids = tokenizer(texts, truncation=True, max_length=meta["max_length"])["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.zeros((len(ids), len(meta["labels"])), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                index = order[start : start + batch_size]
                input_ids, mask = _pad([ids[i] for i in index], pad_id)
                out[index] = model(input_ids, mask).numpy()
        return out

    return run


def _onnx_runner(artifact: Path, model_file: str, threads: int, batch_size: int):
    from models.onnx_model import OnnxClassifier

    info = json.loads((artifact / "artifact.json").read_text(encoding="utf-8"))
    classifier = OnnxClassifier.load(artifact, {**info, "model_file": model_file}, threads=threads,
                                     batch_size=batch_size, token_budget=None)
    return classifier.logits


def _measure(run, texts: list[str], batch_size: int) -> dict[str, Any]:
    """One pass over `texts`: texts/s, and at batch 1 the per-text latencies."""
    if batch_size == 1:
        latencies = []
        for text in texts:
            start = time.perf_counter()
            run([text])
            latencies.append(time.perf_counter() - start)
        return {"texts_per_s": len(texts) / sum(latencies), "latencies": latencies}
    start = time.perf_counter()
    run(texts)
    return {"texts_per_s": len(texts) / (time.perf_counter() - start)}


def _alternating(backends: dict[str, Any], texts: list[str], batch_size: int,
                 rounds: int) -> dict[str, dict[str, float]]:
    """Each backend's median pass of `rounds`, the backends taking turns: this shared VM's
    speed drifts by a third within minutes, which one pass per backend would read as a
    difference between them."""
    for run in backends.values():
        run(texts[: max(batch_size, 8)])  # warm-up: allocations, graph optimisation
    passes: dict[str, list[dict[str, Any]]] = {name: [] for name in backends}
    for _ in range(rounds):
        for name, run in backends.items():
            passes[name].append(_measure(run, texts, batch_size))
    results = {}
    for name, runs in passes.items():
        result = {"texts_per_s": statistics.median(r["texts_per_s"] for r in runs)}
        if batch_size == 1:
            latencies = [t for r in runs for t in r["latencies"]]
            result |= {"p50_ms": 1000 * statistics.median(latencies),
                       "p95_ms": 1000 * float(np.percentile(latencies, 95))}
        results[name] = result
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="fine-tuned model/ folder")
    parser.add_argument("--texts", type=Path, default=Path("datasets/build/test.jsonl"))
    parser.add_argument("--calibration", type=Path, default=Path("datasets/build/train.jsonl"),
                        help="texts the int8 export calibrates its outlier split on")
    parser.add_argument("--n", type=int, default=512, help="texts for the batch-32 runs")
    parser.add_argument("--n-single", type=int, default=200, help="texts for the batch-1 runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="alternating passes per backend (median reported)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from training.export import FP32_FILE, INT8_FILE, calibration_sample, export

    texts = _texts(args.texts, args.n)
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        artifact = Path(tmp)
        export(args.model_dir, artifact, calibration=calibration_sample(args.calibration))
        sizes = {"onnx_fp32": (artifact / FP32_FILE).stat().st_size,
                 "onnx_int8": (artifact / INT8_FILE).stat().st_size}
        for batch_size in (1, 32):
            subset = texts[: args.n_single] if batch_size == 1 else texts
            backends = {
                "torch_fp32": _torch_runner(args.model_dir, args.threads, batch_size),
                "onnx_fp32": _onnx_runner(artifact, FP32_FILE, args.threads, batch_size),
                "onnx_int8": _onnx_runner(artifact, INT8_FILE, args.threads, batch_size),
            }
            for name, result in _alternating(backends, subset, batch_size, args.rounds).items():
                results.setdefault(name, {})[f"batch_{batch_size}"] = result

    table = Table(title=f"classifier throughput, {args.threads} threads, {len(texts)} texts ({args.texts.name}), "
                        f"median of {args.rounds} alternating passes")
    for column in ("backend", "b1 texts/s", "b1 p50 ms", "b32 texts/s", "ratio b1", "ratio b32", "size MB"):
        table.add_column(column, justify="right")
    base = results["torch_fp32"]
    for name, r in results.items():
        b1, b32 = r["batch_1"], r["batch_32"]
        r["ratio_vs_torch_fp32"] = {
            "batch_1": round(b1["texts_per_s"] / base["batch_1"]["texts_per_s"], 2),
            "batch_32": round(b32["texts_per_s"] / base["batch_32"]["texts_per_s"], 2),
        }
        size = sizes.get(name)
        table.add_row(name, f"{b1['texts_per_s']:.0f}", f"{b1['p50_ms']:.1f}", f"{b32['texts_per_s']:.0f}",
                      f"{r['ratio_vs_torch_fp32']['batch_1']:.2f}x", f"{r['ratio_vs_torch_fp32']['batch_32']:.2f}x",
                      "-" if size is None else f"{size / 1e6:.1f}")
    Console().print(table)
    meta = json.loads((args.model_dir / "classifier.json").read_text(encoding="utf-8"))
    report = {
        "model": meta["base_model"], "layers": meta["layers"], "max_length": meta["max_length"],
        "texts": len(texts), "texts_single": min(args.n_single, len(texts)), "source": str(args.texts),
        "threads": args.threads, "rounds": args.rounds, "cpu": platform.processor() or platform.machine(),
        "results": results, "sizes_bytes": sizes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
