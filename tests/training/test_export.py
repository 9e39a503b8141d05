"""ONNX export of a fine-tuned classifier: parity with PyTorch and the artifact it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.artifact import load_artifact
from models.labels import LABELS
from tests.utils.tiny_data import NEGATIVES, POSITIVES
from training.export import FP32_FILE, INT8_FILE, export, parity
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

