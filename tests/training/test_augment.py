"""Evasion augmentation is the inverse of the normaliser."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.normalize import KEY_TERMS, normalize
from training.augment import TRANSFORMS, evade, key_term_spans, transform_names

TERMS = [t.canonical for t in KEY_TERMS]
FILLERS = ["价格私聊", "详情咨询", "欢迎来电", "加微信abc_test1", "qq 10000", "电话13800000000", "名额有限"]
REVERSIBLE = [t.name for t in TRANSFORMS if t.reversible and t.name != "initials"]
_settings = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Key terms stand between clause punctuation, so no neighbouring character glues to them
# (a homophone next to a character it forms a word with is, by design, not undone).
segments = st.lists(st.sampled_from(TERMS + FILLERS), min_size=1, max_size=5).filter(
    lambda parts: any(p in TERMS for p in parts)
)


def _tokens(text: str) -> list[str]:
    """Key terms and contact tokens of a normalised text, in order."""
    out = [term for _, _, term in key_term_spans(text)]
    return out + ["微信"] * text.count("微信") + ["qq"] * text.count("qq")


@_settings
@given(segments, st.sampled_from(REVERSIBLE), st.integers(0, 2**32 - 1))
def test_each_reversible_transform_is_undone(parts: list[str], name: str, seed: int) -> None:
    text = "，".join(parts)
    evaded = evade(text, random.Random(seed), only=(name,))
    assert _tokens(normalize(evaded).text) == _tokens(normalize(text).text), evaded


@_settings
@given(segments, st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_combined_transforms_are_undone(parts: list[str], n: int, seed: int) -> None:
    text = "。".join(parts)
    evaded = evade(text, random.Random(seed), n, only=tuple(REVERSIBLE))
    assert _tokens(normalize(evaded).text) == _tokens(normalize(text).text), evaded


@pytest.mark.parametrize("term", [t.canonical for t in KEY_TERMS if t.initials])
def test_initials_are_undone_next_to_cjk(term: str) -> None:
    text = f"找{term}，详情咨询"
    evaded = evade(text, random.Random(0), only=("initials",))
    assert evaded != text and evaded.isascii() is False
    assert term in normalize(evaded).text


def test_transforms_change_texts_with_key_terms() -> None:
    text = "代孕包成功，出售男婴宝宝，加微信abc_test1，电话13800000000"
    rng = random.Random(7)
    for transform in TRANSFORMS:
        assert transform.apply(text, rng) != text, transform.name


def test_evade_is_deterministic_for_a_seed() -> None:
    text = "私下送养宝宝，有意加微信abc_test1"
    assert evade(text, random.Random(3), 3) == evade(text, random.Random(3), 3)


def test_evade_without_transforms_is_identity() -> None:
    assert evade("代孕", random.Random(0), 0) == "代孕"


def test_evade_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown transform"):
        evade("代孕", random.Random(0), only=("rot13",))
    with pytest.raises(ValueError, match=">= 0"):
        evade("代孕", random.Random(0), -1)


def test_transform_names_are_unique() -> None:
    names = transform_names()
    assert len(names) == len(set(names)) >= 10


def test_key_term_spans_prefer_longest() -> None:
    assert key_term_spans("办出生证明和出生证") == [(1, 5, "出生证明"), (6, 9, "出生证")]


def test_contact_transform_keeps_the_id() -> None:
    text = "加微信abc_test1详谈"
    rng = random.Random(1)
    for _ in range(20):
        evaded = evade(text, rng, only=("contact",))
        assert "abc_test1" in evaded
        assert normalize(evaded).text == normalize(text).text
