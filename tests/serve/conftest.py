"""Fixtures for the service: a database per test (SQLite, and PostgreSQL when configured),
a small deterministic scorer, an app, a client and keys for every role.

PostgreSQL tests read ``JINGWANG_TEST_POSTGRES_URL`` and skip when it is unset. Each test
gets its own schema there (via ``search_path``), dropped afterwards, so tests never see
each other's rows.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from serve.config import Settings
from serve.main import create_app

POSTGRES_URL = os.environ.get("JINGWANG_TEST_POSTGRES_URL")
POSTGRES_SKIP = "JINGWANG_TEST_POSTGRES_URL is not set (CI sets it to a local PostgreSQL)"
ADMIN_KEY = "jw_admin_key_for_tests_only"

THRESHOLDS = {"review": 0.5, "block": 0.85}


# ---------------------------------------------------------------- a scorer with known answers


@dataclass(frozen=True)
class FakeEvidence:
    label: str
    start: int
    end: int
    text: str
    source: str = "lexicon"


@dataclass(frozen=True)
class FakeScreening:
    decision: str
    labels: list[str]
    scores: dict[str, float]
    evidence: list[FakeEvidence]

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "labels": list(self.labels),
            "scores": dict(self.scores),
            "evidence": [e.__dict__ for e in self.evidence],
        }


class FakeLexicon:
    """Plain substring rules: {term: (label, weight)} and allow phrases that cancel hits inside them."""

    def __init__(self, rules: dict[str, tuple[str, float]], allow: tuple[str, ...] = ()) -> None:
        self.rules = rules
        self.allow = allow

    def with_terms(self, block: Any = None, allow: Any = ()) -> FakeLexicon:
        from models.labels import Label

        rules = dict(self.rules)
        for label, terms in (block or {}).items():
            label = Label(label)
            for term in terms:
                if not re.sub(r"\W", "", term):
                    raise ValueError(f"custom {label.value} term {term!r} is empty after normalising")
                rules[term] = (label.value, 0.9)
        for phrase in allow:
            if not re.sub(r"\W", "", phrase):
                raise ValueError(f"custom allow phrase {phrase!r} is empty after normalising")
        return FakeLexicon(rules, (*self.allow, *allow))


DEFAULT_RULES = {
    "代孕": ("surrogacy", 0.95),  # block
    "卖肾": ("organ_trade", 0.95),  # block
    "送养": ("illegal_adoption", 0.6),  # review
    "办出生证": ("document_fraud", 0.7),  # review
    "男婴": ("child_sale", 0.7),  # review
}


class FakeScreener:
    """Deterministic stand-in for `models.scorer.Screener` (same result shape)."""

    def __init__(self) -> None:
        self.lexicon = FakeLexicon(DEFAULT_RULES)
        self.calls = 0

    @property
    def info(self) -> dict[str, Any]:
        return {"kind": "fake", "name": "fake-rules", "version": "1"}

    def screen(self, texts: list[str], *, lexicon: FakeLexicon | None = None) -> list[FakeScreening]:
        from models.labels import LABELS

        self.calls += 1
        lexicon = lexicon or self.lexicon
        out = []
        for post in texts:
            scores = {label.value: 0.0 for label in LABELS}
            evidence = []
            allowed = [(m.start(), m.end()) for p in lexicon.allow for m in re.finditer(re.escape(p), post)]
            for term, (label, weight) in lexicon.rules.items():
                for match in re.finditer(re.escape(term), post):
                    if any(a <= match.start() and match.end() <= b for a, b in allowed):
                        continue
                    scores[label] = max(scores[label], weight)
                    evidence.append(FakeEvidence(label, match.start(), match.end(), term))
            labels = [label for label, score in scores.items() if score >= THRESHOLDS["review"]]
            decision = "pass"
            if labels:
                decision = "block" if any(scores[lab] >= THRESHOLDS["block"] for lab in labels) else "review"
            out.append(FakeScreening(decision, labels, scores, evidence))
        return out


# ---------------------------------------------------------------- databases


def _sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'serve.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema in the test PostgreSQL, as a URL whose connections use it."""
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """Each test that uses this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return _sqlite_url(tmp_path)
    return request.getfixturevalue("postgres_url")


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "secret_key": "test-secret-not-for-production",
        "database_url": database_url,
        "bootstrap_admin_key": ADMIN_KEY,
        "worker_enabled": False,
        "rate_limit_per_minute": 100_000,
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def screener() -> FakeScreener:
    return FakeScreener()


@pytest.fixture
def app(settings: Settings, screener: FakeScreener) -> Iterator[FastAPI]:
    app = create_app(settings, screener=screener, start_worker=False)
    yield app
    app.state.services.db.engine.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


# ---------------------------------------------------------------- keys


@pytest.fixture
def admin() -> dict[str, str]:
    return {"X-API-Key": ADMIN_KEY}


def create_key(client: TestClient, role: str, tenant: str | None = None, **extra: Any) -> dict[str, str]:
    body = {"name": f"{role}-{tenant or 'all'}-{uuid.uuid4().hex[:6]}", "role": role, "tenant": tenant, **extra}
    response = client.post("/v1/admin/keys", json=body, headers={"X-API-Key": ADMIN_KEY})
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["key"]}


@pytest.fixture
def platform(client: TestClient) -> dict[str, str]:
    """A platform key of tenant ``alpha``."""
    return create_key(client, "platform", "alpha")


@pytest.fixture
def other_platform(client: TestClient) -> dict[str, str]:
    """A platform key of tenant ``beta``."""
    return create_key(client, "platform", "beta")


@pytest.fixture
def reviewer(client: TestClient) -> dict[str, str]:
    return create_key(client, "reviewer")


@pytest.fixture
def reviewer2(client: TestClient) -> dict[str, str]:
    return create_key(client, "reviewer")


# Invented posts; contact details are obviously fake (zeros, "_test").
SURROGACY_AD = "专业代孕 包成功 联系薇 abc_test123 电话 138 0000 0001"
ORGAN_AD = "高价卖肾 配型快 联系 139-0000-0002"
ADOPTION_POST = "私下送养女孩 不用手续 联系薇 abc_test123"
BENIGN = "出售二手婴儿车 九成新 同城自提"


def screen(client: TestClient, headers: dict[str, str], external_id: str, text: str, **fields: Any) -> dict:
    response = client.post("/v1/screen", json={"external_id": external_id, "text": text, **fields}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()
