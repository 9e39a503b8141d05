"""The service with the real lexicon-only `Screener` (no trained model needed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from models.scorer import Screener
from serve.main import create_app
from tests.serve.conftest import ADMIN_KEY, create_key, make_settings


@pytest.fixture
def real_client(tmp_path) -> Iterator[TestClient]:
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'real.db'}"), screener=Screener.load("lexicon"), start_worker=False)
    with TestClient(app) as client:
        yield client


def test_real_scorer_flags_an_ad_with_evidence_spans(real_client: TestClient) -> None:
    platform = create_key(real_client, "platform", "alpha")
    text = "专业代孕 包成功 包男孩 联系薇 abc_test123"
    response = real_client.post("/v1/screen", json={"external_id": "r1", "text": text}, headers=platform)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["decision"] in ("review", "block") and "surrogacy" in result["labels"]
    for evidence in result["evidence"]:
        assert text[evidence["start"] : evidence["end"]] == evidence["text"]
    benign = real_client.post("/v1/screen", json={"external_id": "r2", "text": "出售二手婴儿车 九成新"}, headers=platform)
    assert benign.json()["decision"] == "pass"


def test_real_lexicon_takes_tenant_terms(real_client: TestClient) -> None:
    platform = create_key(real_client, "platform", "alpha")
    text = "新品上架 某某特别服务 欢迎咨询"
    assert real_client.post("/v1/screen", json={"external_id": "t1", "text": text}, headers=platform).json()["decision"] == "pass"
    added = real_client.post(
        "/v1/admin/tenants/alpha/terms",
        json={"kind": "block", "label": "organ_trade", "term": "某某特别服务"},
        headers={"X-API-Key": ADMIN_KEY},
    )
    assert added.status_code == 201, added.text
    flagged = real_client.post("/v1/screen", json={"external_id": "t2", "text": text}, headers=platform).json()
    assert "organ_trade" in flagged["labels"]
    assert any(e["label"] == "organ_trade" for e in flagged["evidence"])
