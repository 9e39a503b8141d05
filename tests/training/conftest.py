"""Fixtures for the BERT training tests: a tiny encoder folder and a briefly trained classifier."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.utils.tiny_bert import tiny_bert_folder


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight 2-layer BERT folder with a Unigram tokenizer (built in about a second)."""
    return tiny_bert_folder(tmp_path_factory.mktemp("tiny_encoder"))


@pytest.fixture(scope="session")
def tiny_finetuned(tiny_encoder: Path, tiny_splits: dict[str, Path],
                   tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of a 12-step fine-tuning run of the tiny encoder."""
    from training.finetune import FinetuneConfig, finetune

    out = tmp_path_factory.mktemp("tiny_run")
    finetune(FinetuneConfig(
        base=str(tiny_encoder), train_file=str(tiny_splits["train"]), valid_file=str(tiny_splits["valid"]),
        output=str(out), batch_size=8, max_steps=12, learning_rate=1e-3, progress=False,
        checkpoint_every=5,
    ))
    return out
