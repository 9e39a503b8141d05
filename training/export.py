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
from collections.abc import Iterable, Iterator, Sequence
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
# Input channels of each feed-forward down-projection kept in fp32 (see split_outlier_channels).
OUTLIER_CHANNELS = 4
FP32_SUFFIX = "_outlier_matmul"
CALIBRATION_TEXTS = 512  # training texts `jingwang export` measures the activations on


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


def split_outlier_channels(path: Path, feeds: Iterable[dict[str, np.ndarray]], *,
                           channels: int = OUTLIER_CHANNELS) -> dict[str, list[int]]:
    """Rewrite each feed-forward down-projection of the fp32 graph at `path` in place so that
    its `channels` largest-magnitude input channels (measured on `feeds`) run apart in fp32;
    return the moved channels per projection.

    The input of a down-projection is a GELU output, and in the e5 encoder one channel of it
    carries a massive activation on the first token (34 where the 99.9th percentile is 1.7,
    in the first layer, on the dev set). One dynamic int8 scale per tensor must cover that
    value and rounds the rest of the tensor to a few levels, so these MatMuls used to stay
    fp32: a third of the encoder's multiply-adds. With the outlier channels zeroed on the
    int8 path and multiplied by their few weight rows in fp32 beside it (the decomposition
    LLM.int8() uses), the rest quantizes like any other MatMul, and the sum is the same
    product:  g @ W  =  (g * keep) @ W  +  g[..., outliers] @ W[outliers].
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    prone = set(_outlier_prone(graph))
    projections = [node for node in graph.node if node.name in prone]
    if not projections or channels <= 0:
        return {}
    gelu_outputs = [node.input[0] for node in projections]
    peaks = _channel_peaks(model, gelu_outputs, feeds)
    moved: dict[str, list[int]] = {}
    for node, peak in zip(projections, peaks, strict=True):
        gelu_out, weight_name = node.input
        weight = numpy_helper.to_array(weights[weight_name])
        outliers = np.sort(np.argsort(-peak)[:channels]).astype(np.int64)
        keep = np.ones(weight.shape[0], dtype=np.float32)
        keep[outliers] = 0.0
        name = node.name
        graph.initializer.extend([
            numpy_helper.from_array(keep, f"{name}_keep"),
            numpy_helper.from_array(outliers, f"{name}_outliers"),
            numpy_helper.from_array(weight[outliers], f"{name}_outlier_weight"),
        ])
        output = node.output[0]
        node.input[0] = f"{name}_kept"
        node.output[0] = f"{name}_int8_path"
        index = list(graph.node).index(node)
        graph.node.insert(index, helper.make_node("Mul", [gelu_out, f"{name}_keep"], [f"{name}_kept"],
                                                  name=f"{name}_keep_mul"))
        graph.node.extend([
            helper.make_node("Gather", [gelu_out, f"{name}_outliers"], [f"{name}_outlier_in"],
                             name=f"{name}_outlier_gather", axis=2),
            helper.make_node("MatMul", [f"{name}_outlier_in", f"{name}_outlier_weight"],
                             [f"{name}_fp32_path"], name=f"{name}{FP32_SUFFIX}"),
            helper.make_node("Add", [f"{name}_int8_path", f"{name}_fp32_path"], [output],
                             name=f"{name}_outlier_add"),
        ])
        moved[name] = outliers.tolist()
    onnx.save(_topologically_sorted(model), str(path))
    return moved


def _channel_peaks(model: Any, tensors: list[str], feeds: Iterable[dict[str, np.ndarray]]) -> list[np.ndarray]:
    """Per-channel max |value| of the named rank-3 tensors of `model` over `feeds` (padding
    tokens excluded)."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    peaks = [np.zeros(0, dtype=np.float32) for _ in tensors]
    for feed in feeds:
        real = feed["attention_mask"].astype(bool)
        for k, value in enumerate(session.run(tensors, feed)):
            peak = np.abs(value[real]).max(axis=0)
            peaks[k] = peak if not peaks[k].size else np.maximum(peaks[k], peak)
    if not peaks or not peaks[0].size:
        raise ValueError("no calibration texts to measure activations on")
    return peaks


def _topologically_sorted(model: Any) -> Any:
    """`model` with its nodes in an order where every input is produced before it is read."""
    graph = model.graph
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        remaining = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                remaining.append(node)
        if len(remaining) == len(pending):
            raise ValueError("graph has a cycle or an unproduced input")
        pending = remaining
    del graph.node[:]
    graph.node.extend(ordered)
    return model


def quantize_int8(fp32_path: Path, int8_path: Path) -> Path:
    """Dynamic int8 quantization of the weights (activations quantized at run time).

    Quantized: MatMul, fused Attention, and the word-embedding table (a Gather, or inside a
    fused EmbedLayerNormalization): the table is what keeps a 25k-piece vocabulary small
    enough to ship. Kept in fp32: the few-row outlier MatMuls `split_outlier_channels`
    adds, and a feed-forward down-projection that was not split. Its input is a GELU output
    whose outlier channel one activation scale per tensor cannot hold: on the e5
    classifier, quantizing the unsplit projections changed 2.4% of dev-set decisions."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32_path)).graph
    fp32_nodes = [node.name for node in graph.node if node.name.endswith(FP32_SUFFIX)] + _after_gelu(graph)
    quantize_dynamic(
        str(fp32_path), str(int8_path), weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Attention", "EmbedLayerNormalization", "Gather"],
        nodes_to_exclude=fp32_nodes,
        # Per-output-channel scales: on the e5 classifier, per-tensor scales flipped 1.5% of
        # review decisions against fp32, per-channel 0.5% (same size).
        per_channel=True,
        # Without this, graphs with folded constants fail with "Unable to find data type".
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return int8_path


def _outlier_prone(graph: Any) -> list[str]:
    """Names of the MatMul nodes that read a GELU's or a layer norm's output (the
    feed-forward down- and up-projections)."""
    ops = {"Gelu", "BiasGelu", "FastGelu", "SkipLayerNormalization", "LayerNormalization"}
    sources = {node.output[0] for node in graph.node if node.op_type in ops}
    return [node.name for node in graph.node if node.op_type == "MatMul" and node.input[0] in sources]


def _after_gelu(graph: Any) -> list[str]:
    """Names of the MatMul nodes that read a (fused) GELU's output."""
    gelu_outputs = {out for node in graph.node if node.op_type in {"Gelu", "BiasGelu", "FastGelu"}
                    for out in node.output}
    return [node.name for node in graph.node if node.op_type == "MatMul" and gelu_outputs & set(node.input)]


def calibration_sample(path: Path, size: int = CALIBRATION_TEXTS) -> list[str]:
    """`size` texts spread evenly over the JSONL data file at `path` (for `export`)."""
    from training.dataset import load_jsonl

    rows = load_jsonl(path)
    return [row["text"] for row in rows[:: max(1, len(rows) // size)]][:size]


def _feeds(tokenizer: Any, texts: Sequence[str], max_length: int,
           batch_size: int = 32) -> Iterator[dict[str, np.ndarray]]:
    """Graph inputs for `texts`, normalised as the scorer does, in padded batches."""
    from models.normalize import normalize

    normalised = [normalize(text).text for text in texts]
    for start in range(0, len(normalised), batch_size):
        enc = tokenizer(normalised[start : start + batch_size], truncation=True, max_length=max_length,
                        padding=True, return_tensors="np")
        yield {name: enc[name].astype(np.int64) for name in ("input_ids", "attention_mask")}


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
           calibration_texts: Sequence[str] = (), metrics: dict[str, Any] | None = None,
           lexicon_mode: str = "max") -> dict[str, Any]:
    """Export the fine-tuned model in `model_dir` into the artifact folder `out_dir`; return its info.

    The artifact's ``model_file`` is the int8 graph when `int8` is set, else the fp32 one;
    `keep_fp32=False` drops the fp32 graph after quantizing (smaller shipped folder).
    `calibration_texts` (training texts, normalised here) locate the outlier channels that
    `split_outlier_channels` moves out of int8; without them the down-projections stay fp32.
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
    outliers: dict[str, list[int]] = {}
    if int8 and calibration_texts:
        feeds = _feeds(tokenizer, calibration_texts, int(meta["max_length"]))
        outliers = split_outlier_channels(fp32, feeds)
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
        "fp32_outlier_channels": outliers,
        "training_data_sha256": meta["training_data_sha256"],
        "training_rows": meta["training_rows"],
        "metrics": {"valid": meta["valid_metrics"], **(metrics or {})},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_artifact_info(out_dir, info)
    if int8 and not keep_fp32:
        (out_dir / FP32_FILE).unlink()
    return info
