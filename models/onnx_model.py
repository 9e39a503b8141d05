"""The ONNX backend of the scorer: a fine-tuned BERT classifier run by onnxruntime.

Only `onnxruntime` and `tokenizers` are imported here (no torch, no transformers), so the
scanning path stays light. The artifact folder (written by `training.export`) holds the
graph (``model_file``), a `tokenizers` ``tokenizer.json`` and ``artifact.json`` with
``max_length`` and ``pad_token_id``. The graph takes ``input_ids`` and ``attention_mask``
(int64, batch x sequence, both axes dynamic) and returns per-label ``logits``.

Texts are sorted by token length and cut into batches padded to their own longest text:
posts are short and uneven, and padding everything to `max_length` would waste most of the
compute. A batch also ends when its padded size would pass a token budget or when padding
would exceed a quarter of it, so a few long posts do not pad a batch of short ones: with
fixed batches of 32, `jingwang scan`'s chunks of 64 test-split posts ran at 194 texts/s,
with the budget at ~400-460 (bench/scan.py, same machine, same hour).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import ArtifactError

DEFAULT_BATCH_SIZE = 64  # rows at most per onnxruntime call
# Padded tokens at most per call (None: fixed-size batches). Small enough that a call's
# widest activation (tokens x 1,536 floats in the feed-forward layer: 3 MB here) stays near
# the cores' L2 caches: 512 scored 4-15% more posts/s than 1,024 (three alternating runs of
# `jingwang scan`-sized chunks of test-split posts, 2 cores); 128-256 were no faster.
DEFAULT_TOKEN_BUDGET = 512
MAX_PADDING = 1.25  # padded tokens / real tokens a batch may reach before it is cut
THREADS_ENV = "JINGWANG_THREADS"
# "0": idle onnxruntime threads sleep instead of spinning (for a process where inferences
# arrive from many threads at once and a spinning pool would steal their cores).
SPIN_ENV = "JINGWANG_ORT_SPIN"
# Intra-op threads of a second session that scores calls of at most SMALL_CALL_TEXTS texts
# (unset: one session for everything). The service sets 1: its single posts arrive on many
# request threads at once and run side by side, where one multi-threaded session made them
# queue for its pool (bench/api.py on PostgreSQL, 50 posts/s: p99 73-101 ms with the shared
# two-thread pool, 32-54 ms with single-threaded small calls), while batches keep every core.
SMALL_THREADS_ENV = "JINGWANG_ORT_SMALL_CALL_THREADS"
SMALL_CALL_TEXTS = 4
# onnxruntime graph rewrites left out: SkipLayerNormFusion would merge each residual Add +
# LayerNormalization back into SkipLayerNormalization, whose CPU kernel sums each row in a
# scalar loop (a quarter of the int8 graph's time at batch 32; without it the int8
# classifier scored 675 texts/s instead of 559, bench/scorer.py's texts, same run).
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)


class OnnxClassifier:
    """Per-label sigmoid probabilities from an exported classifier graph."""

    def __init__(self, session: Any, tokenizer: Any, *, pad_id: int, max_length: int,
                 num_labels: int, batch_size: int = DEFAULT_BATCH_SIZE,
                 token_budget: int | None = DEFAULT_TOKEN_BUDGET, small_session: Any = None) -> None:
        self.session = session
        self.small_session = small_session
        self.tokenizer = tokenizer
        self.pad_id = pad_id
        self.max_length = max_length
        self.num_labels = num_labels
        self.batch_size = batch_size
        self.token_budget = token_budget
        self._input_names = {i.name for i in session.get_inputs()}

    @classmethod
    def load(cls, directory: str | Path, info: dict[str, Any], *, threads: int | None = None,
             batch_size: int = DEFAULT_BATCH_SIZE,
             token_budget: int | None = DEFAULT_TOKEN_BUDGET) -> OnnxClassifier:
        """Open the graph and tokenizer named in `info` (the folder's artifact.json).

        `threads` sets onnxruntime's intra-op threads (default: $JINGWANG_THREADS, else every
        core this process may use: onnxruntime's own choice took one of the two cores here and
        ran at half speed); $JINGWANG_ORT_SMALL_CALL_THREADS opens the second session for
        small calls. Raises `ArtifactError` naming what is missing.
        """
        directory = Path(directory)
        missing = [k for k in ("model_file", "tokenizer", "max_length", "labels") if k not in info]
        if missing:
            raise ArtifactError(f"artifact.json lacks {', '.join(missing)} (needed by the onnx backend)", path=directory)
        for key in ("model_file", "tokenizer"):
            if not (directory / info[key]).is_file():
                raise ArtifactError(f"{key} {info[key]!r} is missing from the folder", path=directory)
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - both are core dependencies
            raise ImportError(f"the onnx backend needs onnxruntime and tokenizers ({exc})") from exc

        tokenizer = Tokenizer.from_file(str(directory / info["tokenizer"]))
        max_length = int(info["max_length"])
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length)
        pad_id = info.get("pad_token_id")
        if pad_id is None:
            pad_id = next((tokenizer.token_to_id(t) for t in ("<pad>", "[PAD]") if tokenizer.token_to_id(t) is not None), 0)

        threads = threads or int(os.environ.get(THREADS_ENV, "0") or 0) or len(os.sched_getaffinity(0))
        small_threads = int(os.environ.get(SMALL_THREADS_ENV, "0") or 0)
        session = _open_session(ort, directory, info["model_file"], threads)
        small_session = (
            _open_session(ort, directory, info["model_file"], small_threads)
            if small_threads and small_threads != threads
            else None
        )
        names = {i.name for i in session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= names:
            raise ArtifactError(f"graph inputs {sorted(names)} lack input_ids/attention_mask", path=directory)
        return cls(session, tokenizer, pad_id=int(pad_id), max_length=max_length,
                   num_labels=len(info["labels"]), batch_size=batch_size, token_budget=token_budget,
                   small_session=small_session)

    def logits(self, texts: list[str]) -> np.ndarray:
        """Raw logits, shape (len(texts), num_labels), rows in input order."""
        out = np.zeros((len(texts), self.num_labels), dtype=np.float32)
        if not texts:
            return out
        session = self.small_session if self.small_session and len(texts) <= SMALL_CALL_TEXTS else self.session
        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = [len(e.ids) for e in encodings]
        for index in self._batches(lengths):
            width = max(lengths[i] for i in index)
            input_ids = np.full((len(index), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(index), width), dtype=np.int64)
            for row, i in enumerate(index):
                ids = encodings[i].ids
                input_ids[row, : len(ids)] = ids
                mask[row, : len(ids)] = 1
            feed = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self._input_names:
                feed["token_type_ids"] = np.zeros_like(input_ids)
            out[index] = session.run(["logits"], feed)[0]
        return out

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Row indices per onnxruntime call: by ascending length, within the row and token limits."""
        batches: list[list[int]] = []
        batch: list[int] = []
        real = 0
        for i in sorted(range(len(lengths)), key=lengths.__getitem__):
            padded = (len(batch) + 1) * lengths[i]  # the sort makes this text the widest
            if batch and (
                len(batch) >= self.batch_size
                or (self.token_budget is not None
                    and (padded > self.token_budget or padded > MAX_PADDING * (real + lengths[i])))
            ):
                batches.append(batch)
                batch, real = [], 0
            batch.append(i)
            real += lengths[i]
        if batch:
            batches.append(batch)
        return batches

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Sigmoid probabilities, shape (len(texts), num_labels), for normalised texts."""
        logits = self.logits(texts)
        return 1.0 / (1.0 + np.exp(-logits))


def _open_session(ort: Any, directory: Path, model_file: str, threads: int) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if os.environ.get(SPIN_ENV) == "0":
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(directory / model_file), options, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=list(DISABLED_OPTIMIZERS))
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ArtifactError(f"cannot open {model_file}: {exc}", path=directory) from None
