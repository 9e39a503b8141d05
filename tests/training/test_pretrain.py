"""MLM pretraining: the scratch tokenizer, whole-word masking and a few-step smoke run."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.utils.tiny_data import NEGATIVES, POSITIVES
from training.pretrain import PretrainConfig, pretrain, train_wordpiece, whole_word_mask

TEXTS = [text for text, _ in POSITIVES] + NEGATIVES


@pytest.fixture(scope="module")
def wordpiece(tmp_path_factory: pytest.TempPathFactory):
    return train_wordpiece(TEXTS * 3, 300, tmp_path_factory.mktemp("wordpiece"))


def test_scratch_tokenizer_has_a_real_vocabulary_and_special_tokens(wordpiece) -> None:
    # Regression: a tokenizer built from vocab.txt alone had only the 5 special tokens.
    assert len(wordpiece) > 100
    ids = wordpiece("代孕包成功")["input_ids"]
    assert ids[0] == wordpiece.cls_token_id and ids[-1] == wordpiece.sep_token_id
    assert wordpiece.unk_token_id not in ids
    assert wordpiece.tokenize("代孕") == ["代", "孕"]  # one token per CJK character


def test_whole_word_masking_masks_every_character_of_a_chosen_word(wordpiece) -> None:
    text = "出售九成新婴儿车，带遮阳棚，自提"
    enc = wordpiece(text, return_offsets_mapping=True)
    masked, labels = whole_word_mask(text, enc["input_ids"], enc["offset_mapping"], tokenizer=wordpiece,
                                     probability=0.3, rng=random.Random(3))
    chosen = [i for i, label in enumerate(labels) if label != -100]
    assert chosen, "something must be masked"
    assert labels[0] == labels[-1] == -100  # never [CLS]/[SEP]
    assert all(labels[i] == enc["input_ids"][i] for i in chosen)
    import jieba

    spans = [(s, e) for _, s, e in jieba.tokenize(text)]
    chosen_chars = {enc["offset_mapping"][i][0] for i in chosen}
    for start, end in spans:  # a word is either fully masked or not at all
        inside = {c for c in range(start, end)} & chosen_chars
        assert not inside or inside == set(range(start, end))


def test_pretrain_config_rejects_bad_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hidden"):
        PretrainConfig(output=str(tmp_path), corpus=("pypi",), hidden=30, heads=4)
    with pytest.raises(ValueError, match="corpus"):
        PretrainConfig(output=str(tmp_path), corpus=(str(tmp_path / "missing.txt"),))


def test_a_few_scratch_steps_write_a_loadable_encoder(tmp_path: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(TEXTS * 4), encoding="utf-8")
    summary = pretrain(PretrainConfig(
        output=str(tmp_path / "run"), corpus=(str(corpus),), vocab_size=300, layers=1, hidden=32,
        heads=2, intermediate=64, max_length=32, batch_size=8, max_steps=3, warmup_steps=1,
        progress=False,
    ))
    assert summary["steps"] == 3
    model_dir = tmp_path / "run" / "model"
    encoder = AutoModel.from_pretrained(str(model_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    out = encoder(**tokenizer(["代孕包成功"], return_tensors="pt")).last_hidden_state
    assert out.shape[-1] == 32 and bool(out.isfinite().all())
