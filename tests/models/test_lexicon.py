"""The lexicon: shipped rules, allow-phrases, evasion spans, custom terms, file errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.labels import Label
from models.lexicon import DEFAULT_DIRECTORY, Hit, Lexicon
from models.normalize import normalize


@pytest.fixture(scope="module")
def lex() -> Lexicon:
    return Lexicon.load()


def _max_weight(hits: list[Hit], label: Label) -> float:
    return max((h.weight for h in hits if h.label == label), default=0.0)


STRONG_ADS = [
    ("代孕包成功，价格私聊", Label.SURROGACY),
    ("专业助孕机构，包性别，试管代怀一条龙", Label.SURROGACY),
    ("诚招孕妈，待遇优厚", Label.SURROGACY),
    ("高价收购卵子，女大学生优先，补贴2万", Label.SURROGACY),
    ("出售男婴，健康，出生十天", Label.CHILD_SALE),
    ("刚出生女婴转让，营养费面议", Label.CHILD_SALE),
    ("有偿送养一个男孩", Label.CHILD_SALE),
    ("私下送养宝宝，不用手续", Label.ILLEGAL_ADOPTION),
    ("求领养男孩，可以上户口", Label.ILLEGAL_ADOPTION),
    ("出生医学证明代办，加急出证", Label.DOCUMENT_FRAUD),
    ("亲子鉴定可以改结果，包满意", Label.DOCUMENT_FRAUD),
    ("抱养的孩子上户口包办，价格好说", Label.DOCUMENT_FRAUD),
    ("高价收肾，配型快，中介勿扰", Label.ORGAN_TRADE),
    ("肾源充足，急收供体", Label.ORGAN_TRADE),
    ("越南新娘包成功，不跑路，费用全包", Label.TRAFFICKING),
    ("缅甸高薪，包路费，免费出境", Label.TRAFFICKING),
]


@pytest.mark.parametrize(("text", "label"), STRONG_ADS)
def test_strong_ad_patterns_weigh_high(lex: Lexicon, text: str, label: Label) -> None:
    assert _max_weight(lex.scan(text), label) >= 0.7


BENIGN = [
    "送养小猫，已打疫苗，只限同城",
    "领养狗狗请联系救助站",
    "出售婴儿车，九成新，价格200元",
    "转让婴儿床一张，价格面议",
    "器官捐献登记流程介绍",
    "民政局收养登记需要哪些材料",
    "出生医学证明补办流程",
    "正规医院试管婴儿技术科普",
    "警方严厉打击拐卖妇女儿童犯罪",
    "法院判处代孕中介有期徒刑",
    "解救被拐儿童二十名",
    "今晚吃烤腰子，羊腰子十元一串",
    "月嫂招聘，育儿嫂招聘，待遇好",
    "补肾养肝的食谱推荐",
    "这款蓝宝石戒指价格三万",
    "买孩子的书花了两百元",
]


@pytest.mark.parametrize("text", BENIGN)
def test_benign_texts_stay_below_review(lex: Lexicon, text: str) -> None:
    hits = lex.scan(text)
    assert max((h.weight for h in hits), default=0.0) < 0.5, hits


@pytest.mark.parametrize("text", ["送养小猫", "出售婴儿车", "器官捐献登记", "领养狗狗", "打击拐卖"])
def test_allow_phrase_beats_block_term(lex: Lexicon, text: str) -> None:
    assert lex.scan(text) == []


def test_bare_terms_do_not_reach_review_alone(lex: Lexicon) -> None:
    for text in ["代孕", "拐卖", "器官", "送养", "出生证明", "男婴", "亲子鉴定", "肾源"]:
        hits = lex.scan(text)
        assert hits, text
        assert max(h.weight for h in hits) <= 0.3, (text, hits)


def test_news_wording_cancels_ad_context(lex: Lexicon) -> None:
    ad = "代孕包成功，费用私聊"
    news = "警方通报：代孕包成功广告涉嫌违法"
    assert _max_weight(lex.scan(ad), Label.SURROGACY) >= 0.9
    assert _max_weight(lex.scan(news), Label.SURROGACY) < 0.5


@pytest.mark.parametrize(
    ("text", "evaded"),
    [
        ("代-孕包成功，价格私聊", "代-孕"),
        ("帶孕包成功，价格私聊", "帶孕"),
        ("dai yun包成功，价格私聊", "dai yun"),
        ("亻弋孕包成功，价格私聊", "亻弋孕"),
        ("代❤孕包成功，价格私聊", "代❤孕"),
        ("袋孕包成功，价格私聊", "袋孕"),
    ],
)
def test_evasion_hits_point_at_original_text(lex: Lexicon, text: str, evaded: str) -> None:
    hits = [h for h in lex.scan(text) if h.label == Label.SURROGACY]
    assert any(h.weight >= 0.9 for h in hits)
    bare = [h for h in hits if h.rule_id == "sg.bare"]
    assert [text[h.start : h.end] for h in bare] == [evaded]
    strong = max(hits, key=lambda h: h.weight)
    assert text[strong.start : strong.end].startswith(evaded)


def test_hit_fields(lex: Lexicon) -> None:
    text = "急！出售男婴，价格8万"
    hits = lex.scan(text)
    assert all(isinstance(h, Hit) for h in hits)
    assert all(0 <= h.start < h.end <= len(text) for h in hits)
    assert all(0.0 <= h.weight <= 1.0 for h in hits)
    assert {h.label for h in hits} == {Label.CHILD_SALE}
    price = next(h for h in hits if h.rule_id == "cs.infant_price")
    assert text[price.start : price.end] == "男婴，价格"
    assert price.term == "男婴"
    with pytest.raises(AttributeError):
        price.weight = 0.0  # type: ignore[misc]


def test_price_pattern_needs_an_amount(lex: Lexicon) -> None:
    assert _max_weight(lex.scan("男婴价8万"), Label.CHILD_SALE) >= 0.7
    assert _max_weight(lex.scan("千万不要让宝宝一个人在家"), Label.CHILD_SALE) == 0.0


def test_scan_normalized_matches_scan(lex: Lexicon) -> None:
    text = "V：abc_test123 肾源充足"
    assert lex.scan_normalized(normalize(text)) == lex.scan(text)


def test_empty_and_symbol_only_text(lex: Lexicon) -> None:
    assert lex.scan("") == []
    assert lex.scan("❤❤❤") == []


def test_with_terms_adds_custom_block_and_allow(lex: Lexicon) -> None:
    custom = lex.with_terms(block={Label.SURROGACY: ["某新词"]}, allow=["打击代孕宣传周"])
    hits = custom.scan("欢迎咨询某新词")
    assert [(h.label, h.rule_id, h.weight) for h in hits] == [
        (Label.SURROGACY, "custom:surrogacy:某新词", 0.9)
    ]
    assert lex.scan("欢迎咨询某新词") == []  # the original is unchanged
    assert custom.scan("打击代孕宣传周") == []
    assert custom.sha256 != lex.sha256
    assert custom.version != lex.version


def test_custom_terms_are_normalised(lex: Lexicon) -> None:
    custom = lex.with_terms(block={"organ_trade": ["黑市換腎"]})  # type: ignore[dict-item]
    hits = [h for h in custom.scan("黑 市 换 肾 了解一下") if h.rule_id.startswith("custom:")]
    assert len(hits) == 1 and hits[0].label == Label.ORGAN_TRADE


def test_with_terms_rejects_bad_input(lex: Lexicon) -> None:
    with pytest.raises(ValueError, match="unknown label"):
        lex.with_terms(block={"piracy": ["x"]})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="empty"):
        lex.with_terms(block={Label.SURROGACY: ["❤"]})
    with pytest.raises(ValueError, match="empty"):
        lex.with_terms(allow=["  "])


def test_version_is_stable_and_content_addressed(lex: Lexicon) -> None:
    again = Lexicon.load()
    assert again.sha256 == lex.sha256 and len(lex.sha256) == 64
    assert lex.version.endswith(lex.sha256[:12])


def test_every_label_has_a_term_file() -> None:
    from models.labels import LABELS

    for label in LABELS:
        assert (DEFAULT_DIRECTORY / f"{label.value}.tsv").is_file()
    assert (DEFAULT_DIRECTORY / "allow.tsv").is_file()


def test_shipped_rule_weights_are_in_range(lex: Lexicon) -> None:
    assert len(lex.rules) >= 40 and len(lex.allow) >= 100
    assert all(0.0 <= r.weight <= 1.0 for r in lex.rules)


# ---------------------------------------------------------------- malformed files


def _write(tmp_path: Path, name: str, body: str) -> Path:
    (tmp_path / name).write_text(body, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("# header\nsg.x\t1.5\t代孕\n", r"surrogacy.tsv line 2: .*weight 1.5"),
        ("sg.x\tabc\t代孕\n", r"surrogacy.tsv line 1: weight 'abc' is not a number"),
        ("sg.x\t0.5\n", r"surrogacy.tsv line 1: expected 3-6"),
        ("sg.x\t0.5\t代孕\n\nsg.x\t0.5\t助孕\n", r"surrogacy.tsv line 3: missing or duplicate"),
        ("sg.x\t0.5\t代孕\t包成功\tten\n", r"surrogacy.tsv line 1: window 'ten'"),
        ("sg.x\t0.5\t代孕\t{money}\n", r"surrogacy.tsv line 1: unknown pattern token"),
        ("sg.x\t0.5\t❤\n", r"surrogacy.tsv line 1: .*non-empty term"),
    ],
)
def test_malformed_term_file_names_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    _write(tmp_path, "surrogacy.tsv", body)
    with pytest.raises(ValueError, match=message):
        Lexicon.load(tmp_path)


def test_unknown_file_and_missing_directory(tmp_path: Path) -> None:
    _write(tmp_path, "piracy.tsv", "x\t0.5\ty\n")
    with pytest.raises(ValueError, match="unknown term file"):
        Lexicon.load(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        Lexicon.load(tmp_path / "nope")


def test_directory_without_term_files(tmp_path: Path) -> None:
    _write(tmp_path, "allow.tsv", "送养小猫\n")
    with pytest.raises(ValueError, match="no <label>.tsv"):
        Lexicon.load(tmp_path)


def test_allow_file_rejects_tabs(tmp_path: Path) -> None:
    _write(tmp_path, "surrogacy.tsv", "sg.x\t0.5\t代孕\n")
    _write(tmp_path, "allow.tsv", "# ok\n送养\t小猫\n")
    with pytest.raises(ValueError, match="allow.tsv line 2"):
        Lexicon.load(tmp_path)


def test_custom_directory_loads(tmp_path: Path) -> None:
    _write(tmp_path, "surrogacy.tsv", "# comment\nsg.x\t0.5\t代孕\t包成功\t4\n")
    _write(tmp_path, "allow.tsv", "打击代孕\n")
    lex = Lexicon.load(tmp_path)
    assert [h.rule_id for h in lex.scan("代孕包成功")] == ["sg.x"]
    assert lex.scan("代孕了解一下包成功") == []  # context outside the 4-character window
    assert lex.scan("打击代孕包成功") == []


def test_term_file_with_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    (tmp_path / "surrogacy.tsv").write_bytes("\ufeff# header\r\nsg.x\t0.5\t代孕\r\n".encode())
    lex = Lexicon.load(tmp_path)
    assert [h.rule_id for h in lex.scan("代孕")] == ["sg.x"]


def test_quoted_ad_phrase_is_a_mention(lex: Lexicon) -> None:
    plain = _max_weight(lex.scan("群里有人发出售男婴的帖子"), Label.CHILD_SALE)
    quoted = _max_weight(lex.scan("群里有人发“出售男婴”的帖子"), Label.CHILD_SALE)
    assert plain >= 0.85
    assert quoted == pytest.approx(plain * 0.4)


def test_unless_words_reach_beyond_the_context_window(lex: Lexicon) -> None:
    # the news wording opens the sentence, more than the rule's window before the term
    text = "法院审理查明，被告人在多个群里长期发布广告称代孕包成功"
    assert _max_weight(lex.scan(text), Label.SURROGACY) < 0.5


def test_evidence_spans_do_not_depend_on_the_process_string_hashing() -> None:
    """Context words come out of set operations, whose order changes with PYTHONHASHSEED:
    two context words at the same distance from a term must still give one answer."""
    import json
    import os
    import subprocess
    import sys

    texts = [
        "男婴价格表 女婴价格表 新生儿转让 宝宝出售 买个孩子多少钱 蓝宝价格 粉宝价格 求子家庭 婴儿现货",
        "宝宝送养🌻 男孩 半岁 爸爸妈妈离婚 需要营养费 私聊 不走手续",
    ]
    code = (
        "import json, sys\nfrom models.lexicon import Lexicon\nlexicon = Lexicon.load()\n"
        "print(json.dumps([[(h.rule_id, h.start, h.end) for h in lexicon.scan(t)] for t in json.loads(sys.argv[1])]))"
    )
    root = Path(__file__).resolve().parents[2]
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code, json.dumps(texts)], cwd=root, capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        ).stdout
        for seed in range(6)
    }
    assert len(outputs) == 1
