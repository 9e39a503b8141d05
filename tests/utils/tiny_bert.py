"""A tiny random-weight BERT encoder folder with an e5-style Unigram tokenizer (no downloads)."""

from __future__ import annotations

from pathlib import Path

from tests.utils.tiny_data import NEGATIVES, POSITIVES

EXTRA_TEXT = "0123456789abcdefghijklmnopqrstuvwxyz，。！？～…：、 "


def tiny_bert_folder(out: Path, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Write config.json + model.safetensors + tokenizer.json for a 2-layer, 32-wide BERT.

    The vocabulary holds every character of the invented fixture texts (plus digits and
    ASCII letters), so nothing in the fixtures becomes `<unk>`.
    """
    import torch
    from transformers import BertConfig, BertModel

    from training.encoders import _save_tokenizer, build_unigram_tokenizer

    chars = sorted({c for text, _ in POSITIVES for c in text} | {c for t in NEGATIVES for c in t}
                   | set(EXTRA_TEXT) - {" "})
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581", *chars, *("\u2581" + c for c in chars), "<mask>"]
    scores = [0.0, 0.0, 0.0, 0.0, -2.0, *[-5.0] * len(chars), *[-6.0] * len(chars), 0.0]
    out.mkdir(parents=True, exist_ok=True)
    _save_tokenizer(build_unigram_tokenizer(pieces, scores), out, 128)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(pieces), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=130, pad_token_id=1,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(str(out))
    (out / "SOURCE.md").write_text("Tiny random BERT for tests.\nLicence: Apache-2.0.\n", encoding="utf-8")
    return out
