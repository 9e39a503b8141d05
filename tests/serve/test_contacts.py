"""Contact extraction, including the evasions ads use. Every number and id here is invented."""

from __future__ import annotations

import pytest

from serve.contacts import extract_contacts, normalize_value

CASES = [
    ("电话 13800000001", [("phone", "13800000001")]),
    ("电话 138 0000 0001 随时联系", [("phone", "13800000001")]),
    ("138-0000-0002", [("phone", "13800000002")]),
    ("１３８－００００－０００３", [("phone", "13800000003")]),  # full-width
    ("壹叁捌零零零零零零零肆", [("phone", "13800000004")]),  # financial numerals
    ("幺叁捌洞洞洞洞洞洞洞伍", [("phone", "13800000005")]),  # 幺 = 1, 洞 = 0
    ("①③⑧⓪⓪⓪⓪⓪⓪⓪⑥", [("phone", "13800000006")]),  # circled digits fold by NFKC
    ("+86 138 0000 0007", [("phone", "13800000007")]),
    ("加V：abc_test123 详聊", [("wechat", "abc_test123")]),
    ("薇 abc_test123", [("wechat", "abc_test123")]),
    ("➕V abc_test123", [("wechat", "abc_test123")]),
    ("微信号：ABC_Test123", [("wechat", "abc_test123")]),
    ("vx:fake-id-01", [("wechat", "fake-id-01")]),
    ("扣扣 10000 1 联系", [("qq", "100001")]),
    ("QQ：100002", [("qq", "100002")]),
    ("tg: @fake_tg01", [("telegram", "fake_tg01")]),
    ("邮箱 fake01@example.com", [("email", "fake01@example.com")]),
    # Look-alikes that are not contacts.
    ("出售婴儿车 2019年买的 9成新", []),
    ("价格 12000 元，身高 165cm", []),
    ("订单号 2026112900001234", []),  # 16 digits is not a phone number
    ("微博热搜 今天", []),
    ("review the developer docs", []),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_extracts_contacts_through_evasion(text: str, expected: list[tuple[str, str]]) -> None:
    assert [(c.kind, c.value) for c in extract_contacts(text)] == expected


def test_spans_point_into_the_original_text() -> None:
    text = "联系 １３８ ００００ ０００１ 薇 abc_test123"
    for contact in extract_contacts(text):
        assert text[contact.start : contact.end] == contact.raw


def test_same_contact_twice_is_reported_once() -> None:
    assert len(extract_contacts("13800000001 再说一遍 138 0000 0001")) == 1


@pytest.mark.parametrize(
    ("typed", "value"),
    [("138 0000 0001", "13800000001"), ("+86 138-0000-0001", "13800000001"), ("ABC_test123", "abc_test123"), ("@Fake_tg01", "fake_tg01")],
)
def test_lookup_values_normalise_like_extraction(typed: str, value: str) -> None:
    assert normalize_value(typed) == value
