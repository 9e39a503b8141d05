"""Fixtures shared by every test area."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.utils.tiny_data import rows, write_jsonl


@pytest.fixture(scope="session")
def tiny_splits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Invented train/valid/test files (the valid split repeats train with a suffix)."""
    folder = tmp_path_factory.mktemp("splits")
    return {
        "train": write_jsonl(folder / "train.jsonl", rows() + rows("。") + rows("！")),
        "valid": write_jsonl(folder / "valid.jsonl", rows("～")),
        "test": write_jsonl(folder / "test.jsonl", rows("…")),
    }


@pytest.fixture(scope="session")
def tiny_baseline(tiny_splits: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TF-IDF baseline artifact trained in a second on the invented splits."""
    from training.baseline import train_baseline

    out = tmp_path_factory.mktemp("baseline")
    train_baseline(tiny_splits["train"], tiny_splits["valid"], out)
    return out
