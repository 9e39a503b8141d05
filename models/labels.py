"""The label set of ../shared/taxonomy.md (v1): the one place every other module derives labels from."""

from enum import StrEnum


class Label(StrEnum):
    """Machine names of the screening labels, in taxonomy order."""

    TRAFFICKING = "trafficking"
    CHILD_SALE = "child_sale"
    ILLEGAL_ADOPTION = "illegal_adoption"
    SURROGACY = "surrogacy"
    DOCUMENT_FRAUD = "document_fraud"
    ORGAN_TRADE = "organ_trade"


LABELS: tuple[Label, ...] = tuple(Label)
"""All labels in a fixed order: the column order of every score vector and report."""

LABEL2ID: dict[str, int] = {label.value: i for i, label in enumerate(LABELS)}
ID2LABEL: dict[int, str] = {i: label.value for i, label in enumerate(LABELS)}

CHINESE_NAMES: dict[Label, str] = {
    Label.TRAFFICKING: "拐卖人口",
    Label.CHILD_SALE: "买卖儿童",
    Label.ILLEGAL_ADOPTION: "非法收养/送养",
    Label.SURROGACY: "代孕",
    Label.DOCUMENT_FRAUD: "证件造假",
    Label.ORGAN_TRADE: "器官买卖",
}

TAXONOMY_VERSION = "v1"


def parse_labels(values: list[str] | tuple[str, ...]) -> list[Label]:
    """Turn label names into `Label`s, raising `ValueError` that names an unknown one."""
    labels = []
    for value in values:
        try:
            labels.append(Label(value))
        except ValueError:
            known = ", ".join(LABELS)
            raise ValueError(f"unknown label {value!r}; known labels: {known}") from None
    return labels


def multi_hot(label_lists: list[list[str]]) -> list[list[int]]:
    """One 0/1 row per item, columns in `LABELS` order (validates every name)."""
    rows = []
    for names in label_lists:
        present = set(parse_labels(names))
        rows.append([int(label in present) for label in LABELS])
    return rows
