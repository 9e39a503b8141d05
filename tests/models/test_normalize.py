"""The normaliser: golden cases from normalize_cases.tsv, offsets, and properties."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.normalize import (
    KEY_TERMS,
    NORMALIZER_VERSION,
    Normalized,
    evasion_variants,
    normalize,
)

CASES_FILE = Path(__file__).with_name("normalize_cases.tsv")
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _unescape(value: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)


def _load_cases() -> list[tuple[str, str, str]]:
    cases = []
    for line in CASES_FILE.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        kind, text, expected = line.split("\t")
        cases.append((kind, _unescape(text), _unescape(expected)))
    return cases


CASES = _load_cases()


def test_golden_file_covers_every_evasion_kind() -> None:
    kinds = {kind for kind, _, _ in CASES}
    assert kinds >= {
        "separator", "digits", "fold", "traditional", "emoji", "homophone", "pinyin",
        "lookalike", "contact", "negative",
    }
    assert len(CASES) >= 120
    assert sum(kind == "negative" for kind, _, _ in CASES) >= 30


@pytest.mark.parametrize(("kind", "text", "expected"), CASES, ids=[f"{k}:{t}" for k, t, _ in CASES])
def test_golden(kind: str, text: str, expected: str) -> None:
    assert normalize(text).text == expected


@pytest.mark.parametrize(("kind", "text", "expected"), CASES, ids=[f"{k}:{t}" for k, t, _ in CASES])
def test_golden_is_idempotent(kind: str, text: str, expected: str) -> None:
    assert normalize(expected).text == expected


def test_version_is_a_nonempty_string() -> None:
    assert isinstance(NORMALIZER_VERSION, str) and NORMALIZER_VERSION


def test_offsets_point_at_the_evaded_original() -> None:
    text = "广告：代-孕 包成功，帶孕妈妈，dai yun，亻弋孕"
    n = normalize(text)
    found = []
    pos = n.text.find("代孕")
    while pos != -1:
        start, end = n.to_original(pos, pos + 2)
        found.append(text[start:end])
        pos = n.text.find("代孕", pos + 1)
    assert found == ["代-孕", "帶孕", "dai yun", "亻弋孕"]


def test_offsets_for_contact_alias() -> None:
    text = "有意加V：abc_test123"
    n = normalize(text)
    i = n.text.index("微信")
    start, end = n.to_original(i - 1, i + 2)
    assert text[start:end] == "加V"


def test_offsets_of_expanded_characters() -> None:
    # one original character (㎏ → kg) becomes two normalised ones: both map back to it
    n = normalize("5㎏")
    assert n.text == "5kg"
    assert n.to_original(1, 3) == (1, 2)
    assert n.to_original(2, 3) == (1, 2)


def test_empty_and_out_of_range_spans() -> None:
    n = normalize("代 孕")
    assert n.to_original(0, 0) == (0, 0)
    assert n.to_original(2, 2) == (3, 3)
    with pytest.raises(ValueError, match="outside"):
        n.to_original(1, 5)
    with pytest.raises(ValueError, match="outside"):
        n.to_original(2, 1)
    empty = normalize("")
    assert empty.text == "" and empty.to_original(0, 0) == (0, 0)


def test_symbols_only_text_normalises_to_empty() -> None:
    n = normalize("❤❤ ✨ ")
    assert n.text == ""
    assert n.to_original(0, 0) == (5, 5)


def test_rejects_non_string() -> None:
    with pytest.raises(TypeError, match="str"):
        normalize(b"bytes")  # type: ignore[arg-type]


def test_key_terms_normalise_to_themselves() -> None:
    for term in KEY_TERMS:
        assert normalize(term.canonical).text == term.canonical


def test_result_is_frozen() -> None:
    n = normalize("abc")
    with pytest.raises(AttributeError):
        n.text = "x"  # type: ignore[misc]


# ---------------------------------------------------------------------------- properties

_INTERESTING = (
    "代孕带袋怀卖麦肾源送宋养出生证明男婴女拐器官供卵微信薇威扣加你好的是了孩子购运营妇"
    "亻弋イ乃臤月岀賣腎證嬰兒"
    "daiyunshemqvxwzDYSV"
    "0123456789１２①❶𝟗⁹ＡＢｖ"
    " \u3000-_.·*~|/+,，。！？:：\n❤♥✨🌸🈶➕👶🤰🐧\u200b\u0336\ufe0f"
)
texts = st.one_of(
    st.text(alphabet=_INTERESTING, max_size=40),
    st.text(max_size=30),
)
_settings = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(texts)
def test_offsets_are_valid_and_monotonic(text: str) -> None:
    n = normalize(text)
    assert n.original == text
    assert len(n.starts) == len(n.ends) == len(n.text)
    for s, e in zip(n.starts, n.ends, strict=True):
        assert 0 <= s < e <= len(text)
    assert list(n.starts) == sorted(n.starts)
    assert list(n.ends) == sorted(n.ends)
    for i in range(len(n.text) + 1):
        for j in range(i, min(len(n.text), i + 3) + 1):
            start, end = n.to_original(i, j)
            assert 0 <= start <= end <= len(text)


@_settings
@given(texts)
def test_idempotent(text: str) -> None:
    once = normalize(text).text
    assert normalize(once).text == once


@_settings
@given(
    st.sampled_from([t.canonical for t in KEY_TERMS]),
    st.text(alphabet="你好的是了价格联系我们", max_size=6),
    st.text(alphabet="你好的是了价格联系我们", max_size=6),
    st.sampled_from(["", "-", " ", "❤", "_", ".", "✨"]),
)
def test_evidence_span_covers_the_evaded_term(
    term: str, left: str, right: str, separator: str
) -> None:
    evaded = separator.join(term)
    text = f"{left},{evaded},{right}"
    n = normalize(text)
    pos = n.text.find(term)
    assert pos != -1, n.text
    start, end = n.to_original(pos, pos + len(term))
    assert text[start:end] == evaded


_VARIANTS = sorted(
    (term.canonical, variant)
    for term in KEY_TERMS
    for kind, variants in evasion_variants(term.canonical).items()
    if kind != "initials"  # initials count only next to CJK text, tested in the golden file
    for variant in variants
)


@_settings
@given(st.sampled_from(_VARIANTS), st.sampled_from(["", "价格私聊", "abc"]))
def test_every_generated_variant_maps_back_with_its_span(pair: tuple[str, str], tail: str) -> None:
    term, variant = pair
    text = f"广告,{variant},{tail}"
    n = normalize(text)
    pos = n.text.find(term)
    assert pos != -1, (variant, n.text)
    start, end = n.to_original(pos, pos + len(term))
    assert text[start:end].strip() == variant


def test_initials_need_cjk_next_to_them() -> None:
    assert normalize("找dy妈妈").text == "找代孕妈妈"
    assert normalize("dy").text == "dy"
    assert normalize("my dy app").text == "my dy app"


def test_normalized_type_is_exported() -> None:
    assert isinstance(normalize("x"), Normalized)
