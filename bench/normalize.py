"""Throughput of normalise + lexicon scan, against a bare Aho-Corasick scan of the raw text.

    .venv/bin/python bench/normalize.py [--n 10000] [--seed 0] [--repeat 3]

Texts are synthetic (about 60 characters: invented benign and ad fragments, a third of
them run through `training.augment.evade`), generated in-process from the seed; no dev
data is read. The process is pinned to one core. Timings exclude the one-off table
builds (both sides are warmed up first); the best of ``--repeat`` runs is reported, in
wall-clock and in CPU time (stable when the shared machine is overloaded).
Writes bench/results/normalize.json. Target: >= 5,000 texts/s for normalise + lexicon.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.lexicon import Lexicon  # noqa: E402
from models.normalize import NORMALIZER_VERSION, normalize  # noqa: E402
from training.augment import evade  # noqa: E402

BENIGN = [
    "今天天气不错，带孩子去公园散步", "这家店的牛肉面很好吃，推荐大家去尝尝", "周末有没有人一起去爬山",
    "出售九成新婴儿车，价格两百元", "送养小猫两只，已驱虫，限同城", "招聘育儿嫂，月薪面议",
    "器官捐献登记流程简单，十分钟完成", "民政局收养登记需要的材料如下", "孩子上户口需要带出生医学证明",
    "警方打击拐卖妇女儿童犯罪，解救多人", "新款手机壳到货，微信abc_test1下单", "二手笔记本电脑转让，成色很好",
    "老师布置的作业太多了", "明天早上八点开会，请准时参加", "这本书讲的是一个家庭的故事",
]
ADS = [
    "代孕包成功，价格私聊", "出售男婴，健康，价格8万", "私下送养宝宝，不用手续，可上户口",
    "高价收肾，配型快，加微信abc_test1", "出生医学证明代办，加急出证", "越南新娘包成功，不跑，费用全包",
    "诚招孕妈，待遇优厚，电话13800000000", "亲子鉴定可以改结果，包满意", "有偿送养女婴，营养费面议",
]


def make_texts(n: int, seed: int) -> list[str]:
    """`n` synthetic posts of roughly 40-80 characters."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        parts = []
        while sum(map(len, parts)) < rng.randint(40, 70):
            parts.append(rng.choice(ADS if rng.random() < 0.3 else BENIGN))
        text = "，".join(parts)
        if rng.random() < 0.33:
            text = evade(text, rng, rng.randint(1, 3))
        texts.append(text)
    return texts


def _bare_automaton(lexicon: Lexicon):
    import ahocorasick

    automaton = ahocorasick.Automaton()
    for rule in lexicon.rules:
        for term in rule.terms:
            automaton.add_word(term, term)
    automaton.make_automaton()
    return automaton


def _best_rate(fn, texts: list[str], repeat: int) -> tuple[float, float]:
    """Best (wall-clock, CPU-time) texts/s over `repeat` runs.

    CPU time is reported too because the shared 2-core machines are often overloaded:
    wall-clock rates then swing by 2x between runs while CPU time stays put.
    """
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn(texts)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return len(texts) / best_wall, len(texts) / max(best_cpu, 1e-9)


def run(n: int = 10_000, seed: int = 0, repeat: int = 3) -> dict:
    """Measure and return the results dict (also what goes into the JSON file)."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    texts = make_texts(n, seed)
    lexicon = Lexicon.load()
    automaton = _bare_automaton(lexicon)

    def bare(batch: list[str]) -> None:
        for text in batch:
            for _ in automaton.iter(text):
                pass

    def norm_only(batch: list[str]) -> None:
        for text in batch:
            normalize(text)

    def norm_lexicon(batch: list[str]) -> None:
        scan = lexicon.scan_normalized
        for text in batch:
            scan(normalize(text))

    for fn in (bare, norm_only, norm_lexicon):  # warm caches and lazily built tables
        fn(texts[:200])
    measured = {
        "bare_aho_corasick": _best_rate(bare, texts, repeat),
        "normalize": _best_rate(norm_only, texts, repeat),
        "normalize_lexicon": _best_rate(norm_lexicon, texts, repeat),
    }
    wall = {k: v[0] for k, v in measured.items()}
    cpu = {k: v[1] for k, v in measured.items()}
    return {
        "n_texts": n,
        "seed": seed,
        "repeat": repeat,
        "mean_chars": round(sum(map(len, texts)) / n, 1),
        "texts_per_s": {k: round(v, 1) for k, v in wall.items()},
        "texts_per_cpu_s": {k: round(v, 1) for k, v in cpu.items()},
        "ratio_vs_bare": {k: round(v / wall["bare_aho_corasick"], 4) for k, v in wall.items()},
        "ratio_vs_bare_cpu": {k: round(v / cpu["bare_aho_corasick"], 4) for k, v in cpu.items()},
        "target_texts_per_s": 5000,
        "meets_target": wall["normalize_lexicon"] >= 5000,
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "normalizer_version": NORMALIZER_VERSION,
        "lexicon_version": lexicon.version,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "normalize.json")
    args = parser.parse_args()
    if args.n < 1 or args.repeat < 1:
        parser.exit(2, "--n and --repeat must be positive\n")
    result = run(args.n, args.seed, args.repeat)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"normalise + lexicon, {result['n_texts']} texts, "
                        f"{result['mean_chars']} chars on average, one core")
    table.add_column("pipeline")
    table.add_column("texts/s (wall)", justify="right")
    table.add_column("texts/s (CPU)", justify="right")
    table.add_column("vs bare Aho-Corasick (CPU)", justify="right")
    for key, rate in result["texts_per_s"].items():
        table.add_row(
            key, f"{rate:,.0f}", f"{result['texts_per_cpu_s'][key]:,.0f}",
            f"{result['ratio_vs_bare_cpu'][key]:.3f}x",
        )
    console = Console()
    console.print(table)
    verdict = "meets" if result["meets_target"] else "MISSES"
    console.print(
        f"normalise + lexicon {verdict} the 5,000 texts/s target (wall clock; "
        f"1-minute load average {result['load_average_1min']})"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
