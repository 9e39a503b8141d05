"""Crawl throughput against the local mock site, screening on vs off, in one run.

    .venv/bin/python bench/crawl.py [--copies 20] [--model default] [--repeats 2]

Starts the mock site of tests/crawler/site with every forum thread reposted ``--copies``
times, crawls it with `jingwang crawl` (one subprocess per run, politeness delays off,
8 requests per domain) once without screening and once with the given model, and reports
pages per second from the crawl's own summary (spider open to close: process start-up and
model loading are left out). The ratio "screening on / off" is the figure to compare
across machines. Prints a Rich table and writes bench/results/crawl.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.crawler.site.mock_site import MockSite, write_site_files  # noqa: E402

FAST = [
    "-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=False",
    "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=8", "-s", "CONCURRENT_REQUESTS=16",
    "-s", "RETRY_BACKOFF_BASE=0.05", "-s", "LOG_LEVEL=WARNING",
]


def run_once(site_file: Path, work: Path, *, screen: bool, model: str) -> dict[str, Any]:
    """One crawl in a subprocess; returns its summary."""
    summary = work / "summary.json"
    args = [
        sys.executable, "-m", "jingwang.cli", "crawl", str(site_file),
        "-o", str(work / "feed.jsonl"), "--state-dir", str(work / "state"),
        "-s", f"JINGWANG_SUMMARY_PATH={summary}", *FAST,
    ]
    args += ["--model", model] if screen else ["--no-screen"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"crawl failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(summary.read_text())


def usable_model(model: str) -> str:
    """The model to screen with: the one asked for, or "baseline" while no default is shipped."""
    from models.errors import ArtifactError
    from models.scorer import Screener

    try:
        Screener.load(None if model == "default" else model)
    except ArtifactError as exc:
        if model != "default":
            raise SystemExit(f"model {model!r} cannot be loaded: {exc}") from None
        Console(stderr=True).print("no default model shipped yet: screening with 'baseline'")
        return "baseline"
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=20, help="reposts of each forum thread")
    parser.add_argument("--model", default="default", help="scorer for the screening-on runs")
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting (median kept)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "crawl.json")
    options = parser.parse_args()
    options.model = usable_model(options.model)

    runs: dict[str, list[dict[str, Any]]] = {"screening off": [], f"screening on ({options.model})": []}
    with MockSite(copies=options.copies) as site, tempfile.TemporaryDirectory() as tmp:
        site_file = write_site_files(site.base, Path(tmp) / "sites")["forum"]
        # Raise the page and depth budget of the test site file to cover every copy.
        text = site_file.read_text().replace("max_pages: 200", "max_pages: 100000")
        site_file.write_text(text.replace("max_depth: 6", "max_depth: 10000"))
        for repeat in range(options.repeats):
            for name, screen in zip(runs, (False, True), strict=True):
                work = Path(tmp) / f"{repeat}-{int(screen)}"
                work.mkdir()
                runs[name].append(run_once(site_file, work, screen=screen, model=options.model))

    rows = []
    for name, summaries in runs.items():
        rows.append({
            "setting": name,
            "pages": summaries[0]["pages"],
            "items": summaries[0]["items"],
            "flagged": summaries[0]["flagged"],
            "pages_per_s": median(s["pages_per_s"] for s in summaries),
            "runs_pages_per_s": [s["pages_per_s"] for s in summaries],
        })
    baseline = rows[0]["pages_per_s"]
    for row in rows:
        row["ratio_vs_off"] = round(row["pages_per_s"] / baseline, 3) if baseline else None

    table = Table(title=f"crawl throughput, local mock site ({rows[0]['pages']} pages per crawl)")
    for column in ("setting", "pages", "items", "flagged", "pages/s (median)", "vs screening off"):
        table.add_column(column, justify="left" if column == "setting" else "right")
    for row in rows:
        table.add_row(row["setting"], str(row["pages"]), str(row["items"]), str(row["flagged"]),
                      f"{row['pages_per_s']:.1f}", f"{row['ratio_vs_off']:.2f}x")
    Console().print(table)

    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps({
        "benchmark": "crawl",
        "copies": options.copies,
        "repeats": options.repeats,
        "model": options.model,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "rows": rows,
    }, ensure_ascii=False, indent=2) + "\n")
    Console(stderr=True).print(f"wrote {options.out}")


if __name__ == "__main__":
    main()
