"""Screening on worker processes: the same results as in-process, in order; load errors reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.errors import WorkerError
from models.pool import ScreenerPool
from models.scorer import Screener

BATCHES = [["高价收肾，配型快", "今天天气很好"], ["代孕包成功"], [], ["出生证明办理，可上户口", "周末去爬山"]]


def test_a_pool_returns_what_the_screener_returns_batch_by_batch() -> None:
    expected = [[r.to_dict() for r in Screener.load("lexicon").screen(batch)] for batch in BATCHES]
    with ScreenerPool("lexicon", 2) as pool:
        results = list(pool.map(iter(BATCHES), list))
    assert [batch for batch, _ in results] == BATCHES
    assert [screened for _, screened in results] == expected


def test_a_worker_that_cannot_load_the_model_says_so(tmp_path: Path) -> None:
    with ScreenerPool(str(tmp_path / "missing"), 1) as pool, pytest.raises(WorkerError, match="could not load"):
        list(pool.map(iter(BATCHES), list))
