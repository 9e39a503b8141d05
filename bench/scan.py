"""End-to-end screening speed of the shipped scorers, against the lexicon-only scorer.

    .venv/bin/python bench/scan.py [--n 5000] [--threads 2] [--rounds 3] [--model NAME=ARTIFACT_DIR ...]

Texts are the hand-written posts of the test split (`datasets/build/test.jsonl`,
``source == "seed"``: median 38 characters, like the dev set's 36), cycled to ``--n``;
``--all-sources`` adds the long news passages of the real corpora. For each shipped model the run measures
- ``jingwang scan``'s work in-process: `Screener.screen` over batches of 256 (what the
  command does per batch, without file I/O), in texts/s, after a warm-up: the median of
  ``--rounds`` passes, the models taking turns (this shared VM's speed drifts by a third
  within an hour, and a model measured alone would carry the drift into its ratio);
- single-text latency: ``screen([text])`` one at a time over 300 texts, p50 and p95;
- ``default`` on ``--workers`` processes (`models.pool.ScreenerPool`, what
  ``jingwang scan --workers N`` runs), taking its turn with the others.
``--model`` adds other artifact folders (e.g. the ablation's models) to the same turns.
Ratios are against the lexicon-only scorer measured in the same run. Writes
bench/results/scan.json (or ``--out``). Targets (issue 3): the default model >= 500 texts/s, p50 <= 15 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from models.pool import ScreenerPool  # noqa: E402
from models.scorer import Screener  # noqa: E402
from training.dataset import load_jsonl  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "scan.json"
MODELS = ("lexicon", "baseline", "bert", "default")


def throughput(screener: Screener, texts: list[str], batch_size: int = 256) -> float:
    """Texts per second over `texts`, screened in chunks of `batch_size` as `jingwang scan` does."""
    started = time.perf_counter()
    for offset in range(0, len(texts), batch_size):
        screener.screen(texts[offset : offset + batch_size])
    return len(texts) / (time.perf_counter() - started)


def latency(screener: Screener, texts: list[str]) -> dict[str, float]:
    """p50/p95 of ``screen([text])``, one text at a time."""
    latencies = []
    for text in texts:
        t0 = time.perf_counter()
        screener.screen([text])
        latencies.append((time.perf_counter() - t0) * 1000)
    return {
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(statistics.quantiles(latencies, n=20)[18], 2),
    }


def pool_throughput(pool: ScreenerPool, texts: list[str], batch_size: int = 256) -> float:
    """Texts per second over `texts` on worker processes (`jingwang scan --workers`)."""
    started = time.perf_counter()
    chunks = (texts[offset : offset + batch_size] for offset in range(0, len(texts), batch_size))
    for _ in pool.map(chunks, list):
        pass
    return len(texts) / (time.perf_counter() - started)


def measure(texts: list[str], rounds: int, workers: int,
            extra: dict[str, str] | None = None) -> dict[str, dict]:
    """Every model's throughput in `rounds` alternating passes (so that a change in the shared
    machine's speed lands on all of them, not on one), then its single-text latency; with
    `workers` > 1 also `default` on that many processes. `extra` adds artifact folders by name."""
    screeners = {name: Screener.load(model) for name, model in {**{m: m for m in MODELS}, **(extra or {})}.items()}
    for screener in screeners.values():
        screener.screen(texts[:256])  # warm-up: tables, sessions, jieba
    runs: dict[str, Callable[[], float]] = {
        model: partial(throughput, screener, texts) for model, screener in screeners.items()
    }
    with ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(ScreenerPool("default", workers))
            pool_throughput(pool, texts[: 256 * workers])  # warm-up: starts and loads the workers
            runs[f"default x{workers} proc"] = partial(pool_throughput, pool, texts)
        passes: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(rounds):
            for name, run in runs.items():
                passes[name].append(run())
    results: dict[str, dict] = {
        name: {
            "texts_per_s": round(statistics.median(values), 1),
            "texts_per_s_passes": [round(x, 1) for x in values],
        }
        for name, values in passes.items()
    }
    for model, screener in screeners.items():
        results[model].update(latency(screener, texts[:300]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--texts", type=Path, default=ROOT / "datasets" / "build" / "test.jsonl")
    parser.add_argument("--all-sources", action="store_true", help="include corpus passages")
    parser.add_argument("--rounds", type=int, default=3, help="alternating passes per model (median reported)")
    parser.add_argument("--workers", type=int, default=2, help="also run default on this many processes (1: no)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=DIR",
                        help="another artifact folder to measure (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if any("=" not in spec for spec in args.model):
        parser.error("--model takes NAME=ARTIFACT_DIR")
    extra = dict(spec.split("=", 1) for spec in args.model)
    os.environ.setdefault("JINGWANG_THREADS", str(args.threads))
    rows = [
        row["text"] for row in load_jsonl(args.texts) if args.all_sources or row.get("source") == "seed"
    ]
    texts = [rows[i % len(rows)] for i in range(args.n)]
    results = measure(texts, args.rounds, args.workers, extra)
    base = results["lexicon"]["texts_per_s"]
    for result in results.values():
        result["ratio_vs_lexicon"] = round(result["texts_per_s"] / base, 3)

    table = Table(title=f"screening {args.n} texts ({args.texts.name}), batch 256, median of {args.rounds} passes")
    for column in ("model", "texts/s", "passes", "vs lexicon", "p50 ms", "p95 ms"):
        table.add_column(column, justify="right")
    for model, r in results.items():
        spread = " / ".join(f"{x:.0f}" for x in r["texts_per_s_passes"])
        table.add_row(model, f"{r['texts_per_s']:.0f}", spread, f"{r['ratio_vs_lexicon']:.3f}",
                      f"{r['p50_ms']:.1f}" if "p50_ms" in r else "-", f"{r['p95_ms']:.1f}" if "p95_ms" in r else "-")
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "texts": args.n,
                "source": str(args.texts.relative_to(ROOT)),
                "threads": args.threads,
                "rounds": args.rounds,
                "cpu_count": os.cpu_count(),
                "load_average": os.getloadavg()[0],
                "machine": platform.machine(),
                "results": results,
                "targets": {"default_texts_per_s": 500, "default_p50_ms": 15},
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
