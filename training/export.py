"""Export a fine-tuned classifier to ONNX (fp32 and int8) as a self-describing artifact.

`export(model_dir, out_dir)` is the plain function behind `jingwang export`:

1. loads the folder `training.finetune` wrote, in eval mode with eager attention (SDPA
   exports without fused attention and runs ~35% slower in onnxruntime);
2. `torch.onnx.export` with the TorchScript exporter (``dynamo=False``, opset 17, dynamic
   batch and sequence axes): inputs ``input_ids``/``attention_mask``, output ``logits``;
3. onnxruntime's transformer optimizer fuses the BERT subgraphs (embeddings + layer norm,
   multi-head attention, bias + GELU, skip + layer norm) into single kernels; a family it
   cannot fuse keeps the plain graph;
4. `onnxruntime.quantization.quantize_dynamic` to int8 weights (MatMul, the fused Attention
   and the embedding table), which the CPU's VNNI instructions run several times faster;
5. writes ``artifact.json`` (labels, thresholds, normaliser/taxonomy versions, tokenizer,
   max length, base model and licence, training-data hash, metrics) next to the graph
   and the `tokenizers` ``tokenizer.json``.

`parity` compares the exported graphs with the PyTorch model on the same texts.
"""

from __future__ import annotations

import json
import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.labels import LABELS, TAXONOMY_VERSION

FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
OPSET = 17


def export_onnx(model: torch.nn.Module, path: Path, *, vocab_size: int = 100) -> Path:
    """Write `model` (input_ids, attention_mask -> logits) as an fp32 ONNX graph."""
    model.eval()
    ids = torch.randint(5, max(vocab_size, 6), (2, 16))
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    # The TorchScript exporter warns about traced Python conditions that are constant for
    # this model (padding checks) and about its own deprecation; neither affects the graph.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
            output_names=["logits"], opset_version=OPSET, dynamo=False, do_constant_folding=True,
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                          "attention_mask": {0: "batch", 1: "sequence"}, "logits": {0: "batch"}},
        )
    return path


def fuse_transformer(path: Path, *, num_heads: int, hidden_size: int) -> dict[str, int]:
    """Rewrite the fp32 graph at `path` in place with onnxruntime's BERT fusions; return the
    fused-operator counts. Leaves the file alone (and returns {}) when no attention fuses,
    e.g. for an encoder family the optimizer does not recognise.

    Fusing before quantizing matters: the fused Attention and EmbedLayerNormalization nodes
    have int8 kernels of their own, so the whole encoder runs in int8, about twice as fast
    at batch 1 as quantized MatMuls between fp32 attention arithmetic."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(path), model_type="bert", num_heads=num_heads,
                               hidden_size=hidden_size, opt_level=1)
    counts = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
    if not counts.get("Attention"):
        return {}
    optimized.save_model_to_file(str(path))
    return counts


def quantize_int8(fp32_path: Path, int8_path: Path) -> Path:
    """Dynamic int8 quantization of the weights (activations quantized at run time).

    Quantized: MatMul, fused Attention, and the word-embedding table (a Gather, or inside a
    fused EmbedLayerNormalization): the table is what keeps a 25k-piece vocabulary small
    enough to ship. Kept in fp32: the feed-forward down-projections, whose input is a GELU
    output with a long-tailed range that one activation scale per tensor cannot hold (on the
    e5 classifier, quantizing them changed 2.4% of dev-set decisions against fp32; keeping
    them changed none, for 7 MB more)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fp32_path), str(int8_path), weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Attention", "EmbedLayerNormalization", "Gather"],
        nodes_to_exclude=_after_gelu(onnx.load(str(fp32_path)).graph),
        # Per-output-channel scales: on the e5 classifier, per-tensor scales flipped 1.5% of
        # review decisions against fp32, per-channel 0.5% (same size).
        per_channel=True,
        # Without this, graphs with folded constants fail with "Unable to find data type".
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return int8_path


def _after_gelu(graph: Any) -> list[str]:
    """Names of the MatMul nodes that read a (fused) GELU's output."""
    gelu_outputs = {out for node in graph.node if node.op_type in {"Gelu", "BiasGelu", "FastGelu"}
                    for out in node.output}
    return [node.name for node in graph.node if node.op_type == "MatMul" and gelu_outputs & set(node.input)]


def _torch_logits(model: torch.nn.Module, tokenizer: Any, texts: list[str], max_length: int,
                  batch_size: int = 64) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start : start + batch_size], truncation=True, max_length=max_length,
                            padding=True, return_tensors="pt")
            out.append(model(enc["input_ids"], enc["attention_mask"]).numpy())
    return np.vstack(out) if out else np.zeros((0, len(LABELS)), dtype=np.float32)


def parity(model: torch.nn.Module, tokenizer: Any, artifact_dir: Path, texts: list[str]) -> dict[str, float]:
    """Max |fp32 ONNX - torch| logit difference and the int8/torch decision agreement at 0.5."""
    from models.onnx_model import OnnxClassifier

    info = json.loads((artifact_dir / "artifact.json").read_text(encoding="utf-8"))
    reference = _torch_logits(model, tokenizer, texts, int(info["max_length"]))
    result: dict[str, float] = {}
    for name, file in (("fp32", FP32_FILE), ("int8", INT8_FILE)):
        if not (artifact_dir / file).is_file():
            continue
        logits = OnnxClassifier.load(artifact_dir, {**info, "model_file": file}).logits(texts)
        result[f"{name}_max_abs_diff"] = float(np.abs(logits - reference).max())
        result[f"{name}_decision_agreement"] = float(np.mean((logits > 0) == (reference > 0)))
    return result


def export(model_dir: Path, out_dir: Path, *, int8: bool = True, keep_fp32: bool = True,
           metrics: dict[str, Any] | None = None, lexicon_mode: str = "max") -> dict[str, Any]:
    """Export the fine-tuned model in `model_dir` into the artifact folder `out_dir`; return its info.

    The artifact's ``model_file`` is the int8 graph when `int8` is set, else the fp32 one;
    `keep_fp32=False` drops the fp32 graph after quantizing (smaller shipped folder).
    """
    from models.artifact import write_artifact_info
    from models.normalize import NORMALIZER_VERSION
    from training.finetune import load_classifier

    model, tokenizer, meta = load_classifier(model_dir)
    if meta["labels"] != [label.value for label in LABELS]:
        raise ValueError(f"{model_dir} was trained for labels {meta['labels']}, not this taxonomy")
    out_dir.mkdir(parents=True, exist_ok=True)
    config = model.encoder.config
    fp32 = export_onnx(model, out_dir / FP32_FILE, vocab_size=config.vocab_size)
    fused = fuse_transformer(fp32, num_heads=config.num_attention_heads, hidden_size=config.hidden_size)
    model_file = FP32_FILE
    if int8:
        quantize_int8(fp32, out_dir / INT8_FILE)
        model_file = INT8_FILE
    tokenizer_json = Path(model_dir) / "encoder" / TOKENIZER_FILE
    if not tokenizer_json.is_file():
        raise ValueError(f"{tokenizer_json} is missing: the base encoder needs a fast tokenizer")
    shutil.copyfile(tokenizer_json, out_dir / TOKENIZER_FILE)
    info = {
        "kind": "onnx",
        "labels": meta["labels"],
        "thresholds": meta["thresholds"],
        # The version the model was trained with: a newer normaliser at run time warns.
        "normalizer_version": meta.get("normalizer_version", NORMALIZER_VERSION),
        "taxonomy_version": TAXONOMY_VERSION,
        "lexicon_mode": lexicon_mode,
        "max_length": meta["max_length"],
        "tokenizer": TOKENIZER_FILE,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
        "model_file": model_file,
        "base_model": meta["base_model"],
        "layers": meta["layers"],
        "fused_operators": fused,
        "training_data_sha256": meta["training_data_sha256"],
        "training_rows": meta["training_rows"],
        "metrics": {"valid": meta["valid_metrics"], **(metrics or {})},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_artifact_info(out_dir, info)
    if int8 and not keep_fp32:
        (out_dir / FP32_FILE).unlink()
    return info
