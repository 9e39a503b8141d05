"""Export a fine-tuned classifier to ONNX (fp32 and int8) as a self-describing artifact.

`export(model_dir, out_dir)` is the plain function behind `jingwang export`:

1. loads the folder `training.finetune` wrote, in eval mode with eager attention (SDPA
   exports without fused attention and runs ~35% slower in onnxruntime);
2. `torch.onnx.export` with the TorchScript exporter (``dynamo=False``, opset 17, dynamic
   batch and sequence axes): inputs ``input_ids``/``attention_mask``, output ``logits``;
3. onnxruntime's transformer optimizer fuses the BERT subgraphs (embeddings + layer norm,
   multi-head attention, bias + GELU) into single kernels; a family it cannot fuse keeps
   the plain graph;
4. given calibration texts, `split_outlier_neurons` moves the few feed-forward neurons
   whose GELU output carries outlier values into a small fp32 branch, so that the rest of
   each down-projection can be quantized too;
5. `onnxruntime.quantization.quantize_dynamic` to int8 weights (MatMul, the fused Attention
   and the embedding table), which the CPU's VNNI instructions run several times faster;
6. writes ``artifact.json`` (labels, thresholds, normaliser/taxonomy versions, tokenizer,
   max length, base model and licence, training-data hash, metrics) next to the graph
   and the `tokenizers` ``tokenizer.json``.

`parity` compares the exported graphs with the PyTorch model on the same texts.
"""

from __future__ import annotations

import json
import shutil
import tempfile
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
# Feed-forward neurons per layer kept in fp32 by `split_outlier_neurons`. On the e5
# classifier, int8 against its fp32 twin, decisions agreeing on dev / test / evaded test /
# valid (166 / 740 / 740 / 741 texts): 64 neurons 166 / 740 / 738 / 736; 32: 166 / 739 /
# 739 / 734; 16: 165 / 738 / 737 / 734; whole down-projections in fp32 (the previous
# export) 166 / 740 / 738 / 734. 16-64 ran at the same speed, 29-33% above the latter.
# The 6-layer classifier needs more: 64 neurons 165 / 734 / 736 / 731, 128 neurons
# 165 / 736 / 736 / 735 (`parity`, batches of 32), at the same speed.
OUTLIER_NEURONS = 128
OUTLIER_SUFFIX = "_outlier_fp32"
REST_SUFFIX = "_rest"  # weights of a split block's main branch
CALIBRATION_TEXTS = 512  # training texts the activation peaks are measured on


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
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    # Residual add + LayerNormalization stay two nodes: onnxruntime's CPU kernel for the
    # fused SkipLayerNormalization sums each row in a scalar loop and took a quarter of the
    # int8 graph's time at batch 32; Add + the standard LayerNormalization kernel did the
    # same arithmetic in a fifth of the time (1,100 x 384 floats, 2 threads).
    options.enable_skip_layer_norm = options.enable_bias_skip_layer_norm = False
    optimized = optimize_model(str(path), model_type="bert", num_heads=num_heads,
                               hidden_size=hidden_size, opt_level=1, optimization_options=options)
    counts = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
    if not counts.get("Attention"):
        return {}
    optimized.save_model_to_file(str(path))
    return counts


def split_outlier_neurons(path: Path, feeds: Iterable[dict[str, np.ndarray]], *,
                          neurons: int = OUTLIER_NEURONS) -> dict[str, list[int]]:
    """Rewrite each fused feed-forward block (MatMul -> BiasGelu -> MatMul) of the fp32 graph
    at `path` in place into two branches whose outputs are added: the `neurons` intermediate
    neurons with the largest GELU outputs (measured on `feeds`) in an fp32 branch
    (``*_outlier_fp32`` MatMuls, left alone by `quantize_int8`), the others in the main
    branch, which is then quantized whole. Returns the moved neurons per block.

    Why: a down-projection's input is a GELU output, and in the e5 encoder a few neurons
    carry massive activations (one reaches 34 on the first token where the 99.9th
    percentile is 1.7). One dynamic int8 scale per tensor must cover them and rounds the
    rest to a few levels, so the down-projections used to stay fp32: a third of the
    encoder's multiply-adds and 40% of its time at batch 32. GELU works per neuron, so
    splitting the neurons is exact in fp32 (the decomposition LLM.int8() uses, done on the
    weights: no gather or mask at run time).
    """
    import onnx
    from onnx import helper, numpy_helper

    if neurons <= 0:
        return {}
    model = onnx.load(str(path))
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    blocks = []  # (up MatMul, BiasGelu, down MatMul)
    for gelu in graph.node:
        if gelu.op_type != "BiasGelu":
            continue
        up, down = producer.get(gelu.input[0]), readers.get(gelu.output[0], [])
        if (up is not None and up.op_type == "MatMul" and up.input[1] in weights and gelu.input[1] in weights
                and len(down) == 1 and down[0].op_type == "MatMul" and down[0].input[1] in weights):
            blocks.append((up, gelu, down[0]))
    if not blocks:
        return {}
    peaks = _channel_peaks(model, [gelu.output[0] for _, gelu, _ in blocks], feeds)
    moved: dict[str, list[int]] = {}
    extra: dict[str, list[Any]] = {}  # nodes to insert after the named node
    for (up, gelu, down), peak in zip(blocks, peaks, strict=True):
        if neurons >= peak.size:
            raise ValueError(f"cannot move {neurons} of a feed-forward block's {peak.size} neurons to fp32")
        w_up, bias, w_down = (numpy_helper.to_array(weights[n]) for n in (up.input[1], gelu.input[1], down.input[1]))
        outliers = np.sort(np.argsort(-peak)[:neurons])
        rest = np.setdiff1d(np.arange(peak.size), outliers)
        name = down.name
        branch = {f"{name}_up_w": w_up[:, outliers], f"{name}_bias": bias[outliers],
                  f"{name}_down_w": w_down[outliers]}
        # The main branch keeps its node names; its weights lose the moved neurons.
        for node, index, value in ((up, 1, w_up[:, rest]), (gelu, 1, bias[rest]), (down, 1, w_down[rest])):
            graph.initializer.remove(weights.pop(node.input[index]))
            node.input[index] = f"{node.name}{REST_SUFFIX}"
            graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(value), node.input[index]))
        graph.initializer.extend(numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in branch.items())
        output = down.output[0]
        down.output[0] = f"{name}_rest_out"
        extra[up.name] = [helper.make_node("MatMul", [up.input[0], f"{name}_up_w"], [f"{name}_up_out"],
                                           name=f"{name}_up{OUTLIER_SUFFIX}")]
        extra[gelu.name] = [helper.make_node("BiasGelu", [f"{name}_up_out", f"{name}_bias"], [f"{name}_gelu_out"],
                                             name=f"{name}_gelu_outlier", domain="com.microsoft")]
        extra[down.name] = [
            helper.make_node("MatMul", [f"{name}_gelu_out", f"{name}_down_w"], [f"{name}_outlier_out"],
                             name=f"{name}_down{OUTLIER_SUFFIX}"),
            helper.make_node("Add", [f"{name}_rest_out", f"{name}_outlier_out"], [output], name=f"{name}_add"),
        ]
        moved[name] = outliers.tolist()
    nodes = [new for node in graph.node for new in [node, *extra.get(node.name, [])]]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(path))
    return moved


def _channel_peaks(model: Any, tensors: list[str], feeds: Iterable[dict[str, np.ndarray]]) -> list[np.ndarray]:
    """Per-channel max |value| of the named rank-3 tensors of `model` over `feeds`, padding
    tokens excluded."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    peaks: list[np.ndarray] = []
    for feed in feeds:
        real = feed["attention_mask"].astype(bool)
        batch = [np.abs(value[real]).max(axis=0) for value in session.run(tensors, feed)]
        peaks = batch if not peaks else [np.maximum(a, b) for a, b in zip(peaks, batch, strict=True)]
    if not peaks:
        raise ValueError("no calibration texts to measure the activations on")
    return peaks


def calibration_sample(path: Path, size: int = CALIBRATION_TEXTS) -> list[str]:
    """`size` texts spread evenly over the JSONL data file at `path`."""
    from training.dataset import load_jsonl

    rows = load_jsonl(path)
    return [row["text"] for row in rows[:: max(1, len(rows) // size)]][:size]


def graph_inputs(tokenizer: Any, texts: Sequence[str], max_length: int,
                 batch_size: int = 32) -> Iterator[dict[str, np.ndarray]]:
    """Graph inputs for `texts`, normalised as the scorer does, in padded batches."""
    from models.normalize import normalize

    normalised = [normalize(text).text for text in texts]
    for start in range(0, len(normalised), batch_size):
        enc = tokenizer(normalised[start : start + batch_size], truncation=True, max_length=max_length,
                        padding=True, return_tensors="np")
        yield {name: enc[name].astype(np.int64) for name in ("input_ids", "attention_mask")}


def quantize_int8(fp32_path: Path, int8_path: Path) -> Path:
    """Dynamic int8 quantization of the weights (activations quantized at run time).

    Quantized: MatMul, fused Attention, and the word-embedding table (a Gather, or inside a
    fused EmbedLayerNormalization): the table is what keeps a 25k-piece vocabulary small
    enough to ship. Kept in fp32: the outlier branches `split_outlier_neurons` adds, and any
    down-projection that reads a whole GELU output (not split: no calibration texts, or a
    graph the split does not recognise), whose outlier neurons one activation scale per
    tensor cannot hold (on the e5 classifier, quantizing them whole changed 2.4% of dev-set
    decisions against fp32)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32_path)).graph
    fp32_nodes = [node.name for node in graph.node if node.name.endswith(OUTLIER_SUFFIX)] + _whole_gelu_readers(graph)
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


def _whole_gelu_readers(graph: Any) -> list[str]:
    """Names of the MatMul nodes that read a whole (fused) GELU output: the feed-forward
    down-projections `split_outlier_neurons` did not split."""
    gelu_outputs = {out for node in graph.node if node.op_type in {"Gelu", "BiasGelu", "FastGelu"}
                    for out in node.output}
    return [node.name for node in graph.node if node.op_type == "MatMul" and node.input[0] in gelu_outputs
            and not node.input[1].endswith(REST_SUFFIX)]


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
    """Each ONNX graph of the artifact against the PyTorch model on `texts` (normalised):
    max and mean |logit difference|, and the share of texts whose decisions agree (the same
    labels over their review and their block thresholds)."""
    from models.onnx_model import OnnxClassifier

    info = json.loads((artifact_dir / "artifact.json").read_text(encoding="utf-8"))
    cuts = np.array([[info["thresholds"][label][level] for label in info["labels"]] for level in ("review", "block")])

    def decisions(logits: np.ndarray) -> np.ndarray:  # (texts, 2 levels, labels)
        return 1.0 / (1.0 + np.exp(-logits))[:, None, :] >= cuts[None]

    reference = _torch_logits(model, tokenizer, texts, int(info["max_length"]))
    result: dict[str, float] = {}
    for name, file in (("fp32", FP32_FILE), ("int8", INT8_FILE)):
        if not (artifact_dir / file).is_file():
            continue
        logits = OnnxClassifier.load(artifact_dir, {**info, "model_file": file}).logits(texts)
        result[f"{name}_max_abs_diff"] = float(np.abs(logits - reference).max())
        result[f"{name}_mean_abs_diff"] = float(np.abs(logits - reference).mean())
        agree = (decisions(logits) == decisions(reference)).all(axis=(1, 2))
        result[f"{name}_decision_agreement"] = float(agree.mean())
    return result


def export(model_dir: Path, out_dir: Path, *, int8: bool = True, keep_fp32: bool = True,
           calibration: Sequence[str] = (), outlier_neurons: int = OUTLIER_NEURONS,
           metrics: dict[str, Any] | None = None, lexicon_mode: str = "max") -> dict[str, Any]:
    """Export the fine-tuned model in `model_dir` into the artifact folder `out_dir`; return its info.

    The artifact's ``model_file`` is the int8 graph when `int8` is set, else the fp32 one;
    `keep_fp32=False` drops the fp32 graph after quantizing (smaller shipped folder). With
    `calibration` texts (e.g. `calibration_sample` of the training split) the int8 graph
    gets `split_outlier_neurons` and int8 down-projections; without, those stay fp32.
    The fp32 graph is never split.
    """
    from models.artifact import write_artifact_info
    from models.normalize import NORMALIZER_VERSION, normalize
    from training.finetune import load_classifier

    model, tokenizer, meta = load_classifier(model_dir)
    if meta["labels"] != [label.value for label in LABELS]:
        raise ValueError(f"{model_dir} was trained for labels {meta['labels']}, not this taxonomy")
    out_dir.mkdir(parents=True, exist_ok=True)
    config = model.encoder.config
    fp32 = export_onnx(model, out_dir / FP32_FILE, vocab_size=config.vocab_size)
    fused = fuse_transformer(fp32, num_heads=config.num_attention_heads, hidden_size=config.hidden_size)
    model_file = FP32_FILE
    moved: dict[str, list[int]] = {}
    if int8:
        with tempfile.TemporaryDirectory() as tmp:
            source = fp32
            if calibration and outlier_neurons > 0:
                source = Path(tmp) / FP32_FILE
                shutil.copyfile(fp32, source)
                moved = split_outlier_neurons(source, graph_inputs(tokenizer, calibration, meta["max_length"]),
                                              neurons=outlier_neurons)
            quantize_int8(source, out_dir / INT8_FILE)
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
        # Feed-forward blocks whose outlier neurons run in fp32 (the rest of them in int8).
        "int8_outlier_split": {"blocks": len(moved), "neurons": outlier_neurons if moved else 0,
                               "calibration_texts": len(calibration) if moved else 0},
        "training_data_sha256": meta["training_data_sha256"],
        "training_rows": meta["training_rows"],
        "metrics": {"valid": meta["valid_metrics"], **(metrics or {})},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_artifact_info(out_dir, info)
    if calibration:
        # Recorded so that a retrained artifact shows its own int8 fidelity (texts the
        # split was calibrated on; `tests/models` and the README measure held-out ones).
        normalised = [normalize(text).text for text in calibration]
        info["metrics"]["parity_on_calibration_texts"] = {
            k: round(v, 5) for k, v in parity(model, tokenizer, out_dir, normalised).items()
        }
        write_artifact_info(out_dir, info)
    if int8 and not keep_fp32:
        (out_dir / FP32_FILE).unlink()
    return info
