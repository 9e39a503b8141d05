"""Fine-tuning: config validation, a smoke run, resuming, batching and threshold tuning."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from models.labels import LABELS
from training.finetune import (
    FinetuneConfig,
    finetune,
    length_grouped_batches,
    load_classifier,
    tune_label_thresholds,
)


def _config(tiny_encoder: Path, tiny_splits: dict[str, Path], out: Path, **kw: object) -> FinetuneConfig:
    return FinetuneConfig(base=str(tiny_encoder), train_file=str(tiny_splits["train"]),
                          valid_file=str(tiny_splits["valid"]), output=str(out), progress=False, **kw)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_length", 4), ("batch_size", 0), ("epochs", 0), ("learning_rate", 2.0), ("dropout", 1.5),
     ("layers", 0), ("recall_floor", 1.0), ("max_pos_weight", 0.5), ("max_steps", 0)],
)
def test_config_rejects_bad_values_naming_the_field(
    tiny_encoder: Path, tiny_splits: dict[str, Path], tmp_path: Path, field: str, value: object
) -> None:
    with pytest.raises(ValueError, match=field):
        _config(tiny_encoder, tiny_splits, tmp_path, **{field: value})


def test_config_rejects_missing_base(tiny_splits: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="base"):
        _config(tmp_path / "nope", tiny_splits, tmp_path)


def test_smoke_run_writes_a_loadable_model_with_thresholds(tiny_finetuned: Path) -> None:
    model, tokenizer, meta = load_classifier(tiny_finetuned / "model")
    assert meta["labels"] == [label.value for label in LABELS]
    assert set(meta["thresholds"]) == set(meta["labels"])
    for t in meta["thresholds"].values():
        assert 0 < t["review"] <= t["block"] <= 1
    assert meta["steps"] == 12
    history = json.loads((tiny_finetuned / "history.json").read_text())
    assert len(history) == 12 and all(np.isfinite(h["loss"]) for h in history)
    enc = tokenizer(["代孕包成功"], return_tensors="pt")
    assert model(enc["input_ids"], enc["attention_mask"]).shape == (1, len(LABELS))


def test_training_reduces_the_loss(tiny_encoder: Path, tiny_splits: dict[str, Path], tmp_path: Path) -> None:
    finetune(_config(tiny_encoder, tiny_splits, tmp_path, batch_size=16, max_steps=40,
                     learning_rate=3e-3, head_learning_rate=3e-2, dropout=0.0))
    losses = [h["loss"] for h in json.loads((tmp_path / "history.json").read_text())]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_resuming_a_finished_run_continues_from_the_checkpoint(
    tiny_encoder: Path, tiny_splits: dict[str, Path], tmp_path: Path
) -> None:
    config = _config(tiny_encoder, tiny_splits, tmp_path, batch_size=8, max_steps=6, checkpoint_every=3)
    first = finetune(config)
    second = finetune(config)  # resumes at step 6 of 6: no further training
    assert second["steps"] == first["steps"] == 6
    assert json.loads((tmp_path / "history.json").read_text())[-1]["step"] == 6
    with pytest.raises(ValueError, match="different config"):
        finetune(replace(config, learning_rate=1e-4))


def test_length_grouped_batches_cover_every_row_once() -> None:
    lengths = [random.Random(i).randint(3, 90) for i in range(301)]
    batches = length_grouped_batches(lengths, 16, random.Random(0))
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(301))
    assert max(len(b) for b in batches) == 16


def test_thresholds_keep_recall_at_the_floor() -> None:
    rng = np.random.default_rng(0)
    truth = np.zeros((200, len(LABELS)))
    truth[:40, 0] = 1
    score = rng.uniform(0, 0.3, size=truth.shape)
    score[:40, 0] = np.linspace(0.05, 0.95, 40)  # positives spread low to high
    score[40:60, 0] = 0.5  # negatives in the middle push the best-F1 threshold up
    thresholds = tune_label_thresholds(truth, score, recall_floor=0.9, block_precision=0.97)
    review = thresholds[LABELS[0].value]["review"]
    assert (score[:40, 0] >= review).mean() >= 0.9 or review == 0.1
    assert thresholds[LABELS[0].value]["block"] >= review
