"""ONNX export of a fine-tuned classifier: parity with PyTorch and the artifact it writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.artifact import load_artifact
from models.labels import LABELS
from tests.utils.tiny_data import NEGATIVES, POSITIVES
from training.export import (
    FP32_FILE,
    INT8_FILE,
    OUTLIER_SUFFIX,
    export,
    graph_inputs,
    parity,
    split_outlier_neurons,
)
from training.finetune import load_classifier

TEXTS = [text for text, _ in POSITIVES] + NEGATIVES + ["短", "代孕" * 40]


@pytest.fixture(scope="module")
def tiny_artifact(tiny_finetuned: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("artifact")
    export(tiny_finetuned / "model", out)
    return out


def test_export_writes_a_complete_self_describing_artifact(tiny_artifact: Path) -> None:
    info = json.loads((tiny_artifact / "artifact.json").read_text(encoding="utf-8"))
    assert info["kind"] == "onnx"
    assert info["model_file"] == INT8_FILE
    assert info["labels"] == [label.value for label in LABELS]
    for key in ("thresholds", "normalizer_version", "taxonomy_version", "max_length", "tokenizer",
                "base_model", "training_data_sha256", "metrics", "created"):
        assert key in info, key
    assert {"name", "licence", "source"} <= set(info["base_model"])
    assert load_artifact(tiny_artifact).kind == "onnx"


def test_fp32_onnx_matches_torch_and_int8_mostly_agrees(tiny_finetuned: Path, tiny_artifact: Path) -> None:
    model, tokenizer, _ = load_classifier(tiny_finetuned / "model")
    report = parity(model, tokenizer, tiny_artifact, TEXTS)
    assert report["fp32_max_abs_diff"] < 1e-4
    # A 12-step tiny model has logits near 0, so decisions are fragile; the shipped
    # model's >= 99% agreement is checked in tests/models/test_onnx_model.py.
    assert report["int8_max_abs_diff"] < 0.1


def test_fp32_graph_can_be_dropped(tiny_finetuned: Path, tmp_path: Path) -> None:
    export(tiny_finetuned / "model", tmp_path, keep_fp32=False)
    assert (tmp_path / INT8_FILE).is_file()
    assert not (tmp_path / FP32_FILE).exists()


def test_export_fuses_every_attention_block_before_quantizing(tiny_finetuned: Path, tiny_artifact: Path) -> None:
    import onnx

    layers = load_classifier(tiny_finetuned / "model")[0].encoder.config.num_hidden_layers
    info = json.loads((tiny_artifact / "artifact.json").read_text(encoding="utf-8"))
    assert info["fused_operators"]["Attention"] == layers
    ops = [node.op_type for node in onnx.load(str(tiny_artifact / INT8_FILE)).graph.node]
    # The fused blocks run their own int8 kernels, not fp32 attention between int8 MatMuls.
    assert {"QAttention", "QEmbedLayerNormalization"} <= set(ops)
    assert "Softmax" not in ops
    # Only the feed-forward down-projections (reading a GELU output) stay in fp32.
    assert ops.count("MatMul") == layers
    # Residual adds stay apart from their layer norms (see models.onnx_model.DISABLED_OPTIMIZERS).
    assert "SkipLayerNormalization" not in ops
    assert ops.count("LayerNormalization") == 2 * layers


@pytest.mark.parametrize("disabled", [True, False])
def test_sessions_keep_residual_adds_apart_from_layer_norms(tiny_artifact: Path, tmp_path: Path,
                                                            disabled: bool) -> None:
    import onnx
    import onnxruntime as ort

    from models.onnx_model import DISABLED_OPTIMIZERS

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(tiny_artifact / INT8_FILE), options, providers=["CPUExecutionProvider"],
                         disabled_optimizers=list(DISABLED_OPTIMIZERS) if disabled else [])
    ops = {node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node}
    # Without the setting onnxruntime fuses them back into its slow SkipLayerNormalization.
    assert ("SkipLayerNormalization" in ops) is not disabled



@pytest.fixture(scope="module")
def split_artifact(tiny_finetuned: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("split_artifact")
    export(tiny_finetuned / "model", out, calibration=TEXTS, outlier_neurons=4)
    return out


def _run(path: Path, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.vstack([session.run(["logits"], feed)[0] for feed in feeds])


def test_the_outlier_split_moves_a_massive_neuron_and_changes_no_fp32_output(
    tiny_finetuned: Path, tiny_artifact: Path, tmp_path: Path
) -> None:
    import onnx
    from onnx import numpy_helper

    model, tokenizer, meta = load_classifier(tiny_finetuned / "model")
    feeds = list(graph_inputs(tokenizer, TEXTS, meta["max_length"]))
    # Give neuron 7 of the first feed-forward block a massive activation, as e5 has.
    graph_model = onnx.load(str(tiny_artifact / FP32_FILE))
    gelu = next(node for node in graph_model.graph.node if node.op_type == "BiasGelu")
    bias = next(init for init in graph_model.graph.initializer if init.name == gelu.input[1])
    values = numpy_helper.to_array(bias).copy()
    values[7] = 40.0
    bias.CopyFrom(numpy_helper.from_array(values, bias.name))
    plain = tmp_path / "plain.onnx"
    onnx.save(graph_model, str(plain))
    split = tmp_path / "split.onnx"
    shutil.copyfile(plain, split)

    moved = split_outlier_neurons(split, feeds, neurons=4)

    layers = model.encoder.config.num_hidden_layers
    assert len(moved) == layers and all(len(neurons) == 4 for neurons in moved.values())
    assert 7 in next(iter(moved.values()))
    assert np.abs(_run(split, feeds) - _run(plain, feeds)).max() < 1e-4


def test_a_split_int8_graph_quantizes_the_down_projections_and_keeps_parity(
    tiny_finetuned: Path, split_artifact: Path
) -> None:
    import onnx

    layers = load_classifier(tiny_finetuned / "model")[0].encoder.config.num_hidden_layers
    info = json.loads((split_artifact / "artifact.json").read_text(encoding="utf-8"))
    assert info["int8_outlier_split"] == {"blocks": layers, "neurons": 4, "calibration_texts": len(TEXTS)}
    recorded = info["metrics"]["parity_on_calibration_texts"]
    assert recorded["fp32_max_abs_diff"] < 1e-4 and recorded["fp32_decision_agreement"] == 1.0
    assert 0.0 <= recorded["int8_decision_agreement"] <= 1.0 and recorded["int8_mean_abs_diff"] < 0.1
    fp32_matmuls = [node.name for node in onnx.load(str(split_artifact / INT8_FILE)).graph.node
                    if node.op_type == "MatMul"]
    # Only the two small MatMuls of each outlier branch stay fp32.
    assert len(fp32_matmuls) == 2 * layers and all(name.endswith(OUTLIER_SUFFIX) for name in fp32_matmuls)
    model, tokenizer, _ = load_classifier(tiny_finetuned / "model")
    report = parity(model, tokenizer, split_artifact, TEXTS)
    assert report["fp32_max_abs_diff"] < 1e-4
    assert report["int8_max_abs_diff"] < 0.1


def test_export_without_calibration_texts_keeps_whole_down_projections_fp32(tiny_artifact: Path) -> None:
    info = json.loads((tiny_artifact / "artifact.json").read_text(encoding="utf-8"))
    assert info["int8_outlier_split"] == {"blocks": 0, "neurons": 0, "calibration_texts": 0}
