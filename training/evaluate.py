"""Evaluate a `Screener` on a labelled JSON Lines file and write an HTML report.

Metrics (all at the artifact's own thresholds):
- per-label precision, recall and F1, and their macro average;
- evasion recall: label-level recall over items whose ``kind`` is ``evasion``;
- hard-negative false-positive rate: share of ``kind == "hard_negative"`` items not passed;
- average precision per label (threshold-free), shown with PR curves in the report.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve

from models.labels import LABELS, multi_hot
from models.scorer import Screener


def evaluate(screener: Screener, rows: Sequence[dict[str, Any]], *, batch_size: int = 64) -> dict[str, Any]:
    """Screen ``rows`` (``{"id","text","labels"[,"kind"]}``) and return metrics and predictions."""
    started = time.perf_counter()
    results = []
    for offset in range(0, len(rows), batch_size):
        texts = [row["text"] for row in rows[offset : offset + batch_size]]
        results += screener.screen(texts)
    elapsed = time.perf_counter() - started
    scores = np.array([[r.scores[label.value] for label in LABELS] for r in results]).reshape(-1, len(LABELS))
    truth = np.array(multi_hot([row["labels"] for row in rows]), dtype=bool).reshape(-1, len(LABELS))
    predicted = np.array(
        [[label.value in r.labels for label in LABELS] for r in results], dtype=bool
    ).reshape(-1, len(LABELS))

    per_label = {}
    for column, label in enumerate(LABELS):
        per_label[label.value] = _prf(truth[:, column], predicted[:, column]) | {
            "average_precision": _average_precision(truth[:, column], scores[:, column]),
        }
    kinds = [row.get("kind") for row in rows]
    evasion = np.array([k == "evasion" for k in kinds])
    hard = np.array([k == "hard_negative" for k in kinds])
    negatives = ~truth.any(axis=1)
    flagged = np.array([r.decision != "pass" for r in results], dtype=bool)

    metrics = {
        "items": len(rows),
        "macro_f1": round(float(np.mean([m["f1"] for m in per_label.values()])), 4),
        "micro": _prf(truth.ravel(), predicted.ravel()),
        "evasion_recall": _recall(truth[evasion], predicted[evasion]),
        "evasion_items": int(evasion.sum()),
        "hard_negative_fpr": _rate(flagged[hard]),
        "hard_negative_items": int(hard.sum()),
        "negative_fpr": _rate(flagged[negatives]),
        "per_label": per_label,
        "texts_per_second": round(len(rows) / elapsed, 1) if elapsed else None,
        "model": screener.info.get("base_model", {}).get("name", screener.info["kind"]),
        "lexicon_mode": screener.lexicon_mode,
    }
    predictions = [
        {
            "id": str(row.get("id", i)),
            "text": row["text"],
            "kind": row.get("kind"),
            "labels": list(row["labels"]),
            "predicted": result.labels,
            "decision": result.decision,
            "scores": result.scores,
            "evidence": result.to_dict()["evidence"],
        }
        for i, (row, result) in enumerate(zip(rows, results, strict=True))
    ]
    return {"metrics": metrics, "predictions": predictions}


def _prf(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float | int]:
    tp = int(np.sum(truth & predicted))
    precision = tp / predicted.sum() if predicted.sum() else 0.0
    recall = tp / truth.sum() if truth.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(float(precision), 4),
        "recall": round(float(recall), 4),
        "f1": round(float(f1), 4),
        "support": int(truth.sum()),
    }


def _recall(truth: np.ndarray, predicted: np.ndarray) -> float | None:
    return round(float(np.sum(truth & predicted) / truth.sum()), 4) if truth.sum() else None


def _rate(flags: np.ndarray) -> float | None:
    return round(float(flags.mean()), 4) if flags.size else None


def _average_precision(truth: np.ndarray, score: np.ndarray) -> float | None:
    return round(float(average_precision_score(truth, score)), 4) if truth.any() else None


def write_run(result: dict[str, Any], out_dir: Path) -> Path:
    """Save ``metrics.json``, ``predictions.jsonl`` and ``report.html``; return the report path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(
        json.dumps(result["metrics"], ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    with (out_dir / "predictions.jsonl").open("w", encoding="utf-8") as f:
        for prediction in result["predictions"]:
            f.write(json.dumps(prediction, ensure_ascii=False) + "\n")
    report = out_dir / "report.html"
    report.write_text(render_html(result), encoding="utf-8")
    return report


def worst_errors(predictions: list[dict[str, Any]], n: int = 20) -> dict[str, list[dict[str, Any]]]:
    """False positives with the highest wrong score and false negatives with the lowest right one."""
    false_pos, false_neg = [], []
    for p in predictions:
        truth, predicted = set(p["labels"]), set(p["predicted"])
        for label in predicted - truth:
            false_pos.append({**p, "label": label, "score": p["scores"][label]})
        for label in truth - predicted:
            false_neg.append({**p, "label": label, "score": p["scores"][label]})
    false_pos.sort(key=lambda e: -e["score"])
    false_neg.sort(key=lambda e: e["score"])
    return {"false_positives": false_pos[:n], "false_negatives": false_neg[:n]}


def render_html(result: dict[str, Any]) -> str:
    """A standalone report: summary, per-label table, PR curves and the worst errors."""
    m = result["metrics"]
    rows = "".join(
        f"<tr><td>{label}</td><td>{v['precision']:.3f}</td><td>{v['recall']:.3f}</td>"
        f"<td>{v['f1']:.3f}</td><td>{_fmt(v['average_precision'])}</td><td>{v['support']}</td></tr>"
        for label, v in m["per_label"].items()
    )
    errors = worst_errors(result["predictions"])
    sections = "".join(
        f"<h2>Worst {title}</h2><table><tr><th>id</th><th>label</th><th>score</th><th>text</th></tr>"
        + "".join(
            f"<tr><td>{html.escape(e['id'])}</td><td>{e['label']}</td><td>{e['score']:.3f}</td>"
            f"<td>{html.escape(e['text'][:200])}</td></tr>"
            for e in errors[key]
        )
        + "</table>"
        for title, key in (("false positives", "false_positives"), ("false negatives", "false_negatives"))
    )
    return f"""<!doctype html><html lang="zh"><head><meta charset="utf-8"><title>jingwang eval</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:4px}}
table{{border-collapse:collapse;margin-bottom:1.5em}}</style></head><body>
<h1>jingwang evaluation: {html.escape(str(m['model']))}</h1>
<p>{m['items']} items · macro-F1 <b>{m['macro_f1']:.3f}</b> · evasion recall <b>{_fmt(m['evasion_recall'])}</b>
({m['evasion_items']} items) · hard-negative FPR <b>{_fmt(m['hard_negative_fpr'])}</b>
({m['hard_negative_items']} items) · lexicon mode {m['lexicon_mode']}</p>
<table><tr><th>label</th><th>precision</th><th>recall</th><th>F1</th><th>AP</th><th>support</th></tr>{rows}</table>
<h2>Precision–recall curves</h2><img alt="PR curves" src="data:image/png;base64,{_pr_curves_png(result)}">
{sections}</body></html>"""


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _pr_curves_png(result: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predictions = result["predictions"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label in LABELS:
        truth = np.array([label.value in p["labels"] for p in predictions])
        if not truth.any():
            continue
        score = np.array([p["scores"][label.value] for p in predictions])
        precision, recall, _ = precision_recall_curve(truth, score)
        ax.plot(recall, precision, label=label.value)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left", fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
