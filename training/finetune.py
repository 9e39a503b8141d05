"""Fine-tune a BERT-family encoder as the multi-label screening classifier.

`finetune(config)` is the plain function behind `jingwang train`. It loads any local
Hugging Face encoder folder (`AutoModel`/`AutoTokenizer`: the converted e5 from
`training.encoders`, the scratch BERT from `training.pretrain`, or a user's
bert-base-chinese), optionally keeps only its first N layers (CPU speed), puts a
mean-pooling + linear head on it and trains with per-label BCE (`pos_weight` from the
label frequencies). Texts are normalised with `models.normalize` exactly as the scorer
does at run time. After training, per-label thresholds are tuned on the validation split
and the model, tokenizer and thresholds are saved under ``<output>/model``.

The loop is a plain PyTorch loop: length-grouped batches padded per batch, linear warm-up
and decay, gradient clipping, a resumable checkpoint in ``<output>/checkpoint`` written
every `checkpoint_every` steps and at every epoch end.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.labels import LABELS, multi_hot

HEAD_FILE = "head.pt"
CLASSIFIER_FILE = "classifier.json"


@dataclass
class FinetuneConfig:
    """Everything a fine-tuning run depends on; validated on construction."""

    base: str
    train_file: str
    valid_file: str
    output: str
    layers: int | None = None
    max_length: int = 128
    batch_size: int = 32
    epochs: float = 3.0
    learning_rate: float = 5e-5
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    dropout: float = 0.1
    freeze_embeddings: bool = True
    max_pos_weight: float = 8.0
    recall_floor: float = 0.9
    block_precision: float = 0.97
    seed: int = 13
    threads: int = 2
    max_steps: int | None = None
    checkpoint_every: int = 200
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("base", "train_file", "valid_file"):
            if not Path(getattr(self, name)).exists():
                raise ValueError(f"{name}: {getattr(self, name)!r} does not exist")
        if self.layers is not None and self.layers < 1:
            raise ValueError(f"layers must be >= 1 or None, got {self.layers}")
        if not 8 <= self.max_length <= 512:
            raise ValueError(f"max_length must be in 8..512, got {self.max_length}")
        for name in ("batch_size", "threads", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps}")
        for name in ("learning_rate", "head_learning_rate"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        for name in ("weight_decay", "warmup_ratio", "dropout", "recall_floor"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 < self.block_precision <= 1:
            raise ValueError(f"block_precision must be in (0, 1], got {self.block_precision}")
        if self.max_pos_weight < 1:
            raise ValueError(f"max_pos_weight must be >= 1, got {self.max_pos_weight}")


class MultiLabelClassifier(nn.Module):
    """An encoder, attention-masked mean pooling, dropout and one logit per label."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits (batch, num_labels); apply a sigmoid for probabilities."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))


def load_encoder(base: str | Path, *, layers: int | None = None) -> nn.Module:
    """A local HF encoder folder as an eager-attention `AutoModel`, optionally truncated."""
    from transformers import AutoModel

    kwargs: dict[str, Any] = {"attn_implementation": "eager"}
    try:
        encoder = AutoModel.from_pretrained(str(base), add_pooling_layer=False, **kwargs)
    except TypeError:  # families without a pooler reject the argument
        encoder = AutoModel.from_pretrained(str(base), **kwargs)
    if layers is not None:
        blocks = encoder.encoder.layer
        if layers > len(blocks):
            raise ValueError(f"layers={layers} but {base} has only {len(blocks)}")
        encoder.encoder.layer = blocks[:layers]
        encoder.config.num_hidden_layers = layers
    return encoder


def load_classifier(model_dir: str | Path) -> tuple[MultiLabelClassifier, Any, dict[str, Any]]:
    """Load a fine-tuned model folder written by `finetune`: (model in eval mode, tokenizer, meta)."""
    from transformers import AutoTokenizer

    model_dir = Path(model_dir)
    meta = json.loads((model_dir / CLASSIFIER_FILE).read_text(encoding="utf-8"))
    encoder = load_encoder(model_dir / "encoder")
    model = MultiLabelClassifier(encoder, len(meta["labels"]))
    model.head.load_state_dict(torch.load(model_dir / HEAD_FILE, weights_only=True))
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir / "encoder"))
    return model.eval(), tokenizer, meta


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _load_rows(path: str) -> tuple[list[str], np.ndarray]:
    from models.normalize import normalize
    from training.dataset import load_jsonl

    rows = load_jsonl(path)
    texts = [normalize(row["text"]).text for row in rows]
    return texts, np.asarray(multi_hot([row["labels"] for row in rows]), dtype=np.float32)


def _encode(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]


def _pad(batch: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, ids in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        mask[i, : len(ids)] = 1
    return input_ids, mask


def length_grouped_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar length: little padding, still random order across batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


@torch.no_grad()
def predict_logits(model: nn.Module, ids: list[list[int]], pad_id: int, batch_size: int = 64) -> np.ndarray:
    """Logits for pre-tokenised inputs, batched by length (rows returned in input order)."""
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = np.zeros((len(ids), model.head.out_features), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        input_ids, mask = _pad([ids[i] for i in index], pad_id)
        out[index] = model(input_ids, mask).numpy()
    return out


def tune_label_thresholds(y_true: np.ndarray, y_score: np.ndarray, *, recall_floor: float,
                          block_precision: float) -> dict[str, dict[str, float]]:
    """Per-label thresholds: best-F1 review threshold, lowered when needed to keep recall at
    `recall_floor` (never below 0.1), and a block threshold at `block_precision`."""
    from training.thresholds import tune_thresholds

    tuned = tune_thresholds(y_true, y_score, block_precision=block_precision)
    result = {}
    for column, label in enumerate(LABELS):
        review, block = tuned[label.value].review, tuned[label.value].block
        truth, score = y_true[:, column].astype(bool), y_score[:, column]
        if truth.any():
            floor_threshold = float(np.quantile(score[truth], 1 - recall_floor))
            if (score[truth] >= review).mean() < recall_floor:
                review = max(min(review, floor_threshold), 0.1)
        result[label.value] = {"review": round(review, 4), "block": round(max(block, review), 4)}
    return result


def label_metrics(y_true: np.ndarray, y_score: np.ndarray, thresholds: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Per-label precision/recall/F1 at the review thresholds and their macro-F1."""
    per_label = {}
    for column, label in enumerate(LABELS):
        truth = y_true[:, column].astype(bool)
        predicted = y_score[:, column] >= thresholds[label.value]["review"]
        tp = float(np.sum(truth & predicted))
        precision = tp / max(predicted.sum(), 1)
        recall = tp / max(truth.sum(), 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        per_label[label.value] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}
    return {"macro_f1": round(float(np.mean([m["f1"] for m in per_label.values()])), 4), "per_label": per_label}


def _sha256(*files: str) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(Path(file).read_bytes())
    return digest.hexdigest()


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"), disable=not enabled,
    )


def finetune(config: FinetuneConfig) -> dict[str, Any]:
    """Train, tune thresholds on the validation split, save ``<output>/model``; return a summary."""
    from transformers import AutoTokenizer

    from models.normalize import NORMALIZER_VERSION

    torch.set_num_threads(config.threads)
    _seed_everything(config.seed)
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(config.base)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # Hashed as read: the files may be rebuilt while a long run trains.
    data_sha256 = _sha256(config.train_file, config.valid_file)
    train_texts, y_train = _load_rows(config.train_file)
    valid_texts, y_valid = _load_rows(config.valid_file)
    train_ids = _encode(tokenizer, train_texts, config.max_length)
    valid_ids = _encode(tokenizer, valid_texts, config.max_length)

    model = MultiLabelClassifier(load_encoder(config.base, layers=config.layers), len(LABELS), config.dropout)
    if config.freeze_embeddings:
        # The word-embedding table is most of a small encoder's parameters; with a few
        # thousand training texts, updating it mostly overfits and costs a dense Adam step.
        model.encoder.get_input_embeddings().weight.requires_grad_(False)
    positives = y_train.sum(0)
    pos_weight = torch.tensor(
        np.clip((len(y_train) - positives) / np.maximum(positives, 1), 1.0, config.max_pos_weight),
        dtype=torch.float32,
    )
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    trainable = [(n, p) for n, p in model.encoder.named_parameters() if p.requires_grad]
    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "norm.weight")
    groups = [
        {"params": [p for n, p in trainable if not n.endswith(no_decay)],
         "weight_decay": config.weight_decay, "lr": config.learning_rate},
        {"params": [p for n, p in trainable if n.endswith(no_decay)],
         "weight_decay": 0.0, "lr": config.learning_rate},
        {"params": list(model.head.parameters()), "weight_decay": 0.0, "lr": config.head_learning_rate},
    ]
    optimizer = torch.optim.AdamW(groups)
    steps_per_epoch = math.ceil(len(train_ids) / config.batch_size)
    total = config.max_steps or max(1, int(steps_per_epoch * config.epochs))
    warmup = int(total * config.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / max(warmup, 1), max(0.0, (total - s) / max(total - warmup, 1)))
    )

    step, history = 0, []
    checkpoint = out / "checkpoint" / "state.pt"
    config_json = json.dumps(asdict(config), sort_keys=True)
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        if state["config"] != config_json:
            raise ValueError(f"{checkpoint} belongs to a different config; remove it or change output")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, history = state["step"], state["history"]
        random.setstate(state["python_rng"])
        torch.set_rng_state(state["torch_rng"])

    def save_checkpoint() -> None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = checkpoint.with_suffix(".tmp")
        torch.save({
            "config": config_json, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "step": step, "history": history,
            "python_rng": random.getstate(), "torch_rng": torch.get_rng_state(),
        }, tmp)
        tmp.replace(checkpoint)  # atomic: a killed run never leaves half a checkpoint

    lengths = [len(ids) for ids in train_ids]
    started = time.perf_counter()
    seen = 0
    with _progress(config.progress) as progress:
        task = progress.add_task("fine-tune", total=total, completed=step, status="")
        while step < total:
            epoch = step // steps_per_epoch
            # The batch order of an epoch depends only on seed and epoch, so resuming
            # mid-epoch skips exactly the batches already trained on.
            batches = length_grouped_batches(lengths, config.batch_size, random.Random(config.seed + epoch))
            for batch in batches[step % steps_per_epoch :]:
                model.train()
                input_ids, mask = _pad([train_ids[i] for i in batch], pad_id)
                loss = loss_fn(model(input_ids, mask), torch.from_numpy(y_train[batch]))
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                seen += len(batch)
                history.append({"step": step, "loss": round(loss.item(), 5)})
                rate = seen / max(time.perf_counter() - started, 1e-9)
                progress.update(task, completed=step, status=f"loss {loss.item():.4f} {rate:.0f}/s")
                if not config.progress and step % 50 == 0:
                    print(f"step {step}/{total} loss {loss.item():.4f} {rate:.1f} samples/s", flush=True)
                if step % config.checkpoint_every == 0:
                    save_checkpoint()
                if step >= total:
                    break
            save_checkpoint()

    valid_scores = 1 / (1 + np.exp(-predict_logits(model, valid_ids, pad_id)))
    thresholds = tune_label_thresholds(
        y_valid, valid_scores, recall_floor=config.recall_floor, block_precision=config.block_precision
    )
    metrics = label_metrics(y_valid, valid_scores, thresholds)
    model_dir = out / "model"
    (model_dir / "encoder").mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(str(model_dir / "encoder"))
    tokenizer.model_max_length = config.max_length
    tokenizer.save_pretrained(str(model_dir / "encoder"))
    torch.save(model.head.state_dict(), model_dir / HEAD_FILE)
    base_info = _base_info(config.base)
    meta = {
        "labels": [label.value for label in LABELS],
        "thresholds": thresholds,
        "max_length": config.max_length,
        "normalizer_version": NORMALIZER_VERSION,
        "pooling": "mean",
        "base_model": base_info,
        "layers": model.encoder.config.num_hidden_layers,
        "training_data_sha256": data_sha256,
        "training_rows": len(train_ids),
        "valid_metrics": metrics,
        "steps": step,
        "train_seconds": round(time.perf_counter() - started, 1),
        "config": asdict(config),
    }
    (model_dir / CLASSIFIER_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (out / "history.json").write_text(json.dumps(history) + "\n", encoding="utf-8")
    return meta


def _base_info(base: str) -> dict[str, str]:
    """Name/licence/source of the base encoder, from its SOURCE.md when we wrote it."""
    source = Path(base) / "SOURCE.md"
    info = {"name": Path(base).name, "licence": "unknown", "source": str(base)}
    if source.is_file():
        text = source.read_text(encoding="utf-8")
        info["source"] = text.splitlines()[0]
        for line in text.splitlines():
            if line.startswith("Licence:"):
                info["licence"] = line.split(":", 1)[1].strip().rstrip(".")
            elif line.startswith("Name:"):
                info["name"] = line.split(":", 1)[1].strip()
    return info
