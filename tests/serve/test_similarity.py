"""MinHash near-duplicate detection used for campaign clusters."""

from __future__ import annotations

from serve.similarity import BANDS, band_keys, minhash, similarity

AD = "专业代孕 包成功 包男孩 价格优惠 全国可做 欢迎咨询 联系薇 abc_test123"


def test_reposted_ad_with_small_changes_is_similar() -> None:
    variant = AD.replace("abc_test123", "xyz_test456") + "！！"
    a, b = minhash(AD), minhash(variant)
    assert similarity(a, b) >= 0.6
    assert set(band_keys(a)) & set(band_keys(b))


def test_unrelated_texts_are_not_similar() -> None:
    assert similarity(minhash(AD), minhash("出售二手婴儿车 九成新 同城自提 价格好说")) < 0.2


def test_signatures_are_stable_and_ignore_case_width_and_punctuation() -> None:
    assert minhash("ABC，代孕") == minhash("ａｂｃ 代孕")
    assert len(band_keys(minhash(AD))) == BANDS


def test_text_without_letters_has_no_signature() -> None:
    assert minhash("！？。 …") is None
