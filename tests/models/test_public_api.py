"""The public surface of `models` is small and deliberate: changing it must change this test."""

import models


def test_exported_members() -> None:
    assert sorted(models.__all__) == sorted(
        [
            "CHINESE_NAMES", "LABELS", "NORMALIZER_VERSION", "ArtifactError", "Evidence", "Hit",
            "InputError", "JingwangError", "Label", "Lexicon", "Normalized", "Screener",
            "Screening", "Thresholds", "normalize",
        ]
    )
    for name in models.__all__:
        assert getattr(models, name) is not None


def test_label_set_follows_the_taxonomy() -> None:
    assert [label.value for label in models.LABELS] == [
        "trafficking", "child_sale", "illegal_adoption", "surrogacy", "document_fraud", "organ_trade",
    ]
    assert set(models.CHINESE_NAMES) == set(models.LABELS)
