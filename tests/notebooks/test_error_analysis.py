"""notebooks/error_analysis.ipynb runs top to bottom on a fresh eval run, so it does not rot."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from models.scorer import Screener
from training.dataset import load_jsonl
from training.evaluate import evaluate, write_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_error_analysis_notebook_executes(tiny_splits: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_run(evaluate(Screener.load("lexicon"), load_jsonl(tiny_splits["test"])), run)
    notebook = nbformat.read(ROOT / "notebooks" / "error_analysis.ipynb", as_version=4)
    os.environ["JINGWANG_RUN"] = str(run)
    try:
        NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    finally:
        del os.environ["JINGWANG_RUN"]
    outputs = "".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    assert "macro-F1" in outputs and "organ_trade" in outputs
