"""``POST /v1/screen``: results, storage, idempotency, versions, and every kind of bad input."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.serve.conftest import BENIGN, ORGAN_AD, SURROGACY_AD, create_key, screen


def test_single_item_is_screened_stored_and_queued(client: TestClient, platform: dict) -> None:
    result = screen(client, platform, "post-1", SURROGACY_AD, url="https://example.com/p/1", source="forum")
    assert result["decision"] == "block"
    assert result["labels"] == ["surrogacy"]
    assert result["created"] is True and result["version"] == 1
    assert result["review_status"] == "pending"
    assert {e["text"] for e in result["evidence"]} == {"代孕"}
    assert {(c["kind"], c["value"]) for c in result["contacts"]} == {
        ("wechat", "abc_test123"),
        ("phone", "13800000001"),
    }
    stored = client.get(f"/v1/items/{result['id']}", headers=platform).json()
    assert stored["text"] == SURROGACY_AD
    assert stored["url"] == "https://example.com/p/1"
    assert stored["decision"] == "block"


def test_benign_item_passes_and_is_not_queued(client: TestClient, platform: dict, reviewer: dict) -> None:
    result = screen(client, platform, "post-2", BENIGN)
    assert result["decision"] == "pass" and result["labels"] == []
    assert result["review_status"] == "none"
    assert client.get("/v1/review/queue", headers=reviewer).json()["tasks"] == []


def test_batch_answers_per_item_in_order(client: TestClient, platform: dict) -> None:
    items = [
        {"external_id": "b1", "text": SURROGACY_AD},
        {"external_id": "b2", "text": BENIGN},
        {"external_id": "b3", "text": ORGAN_AD},
    ]
    response = client.post("/v1/screen", json={"items": items}, headers=platform)
    assert response.status_code == 200, response.text
    results = response.json()["items"]
    assert [r["external_id"] for r in results] == ["b1", "b2", "b3"]
    assert [r["decision"] for r in results] == ["block", "pass", "block"]
    assert len({r["id"] for r in results}) == 3


def test_same_text_returns_the_stored_result_without_rescoring(
    client: TestClient, platform: dict, screener
) -> None:
    first = screen(client, platform, "post-3", SURROGACY_AD)
    calls = screener.calls
    again = screen(client, platform, "post-3", SURROGACY_AD)
    assert again["id"] == first["id"] and again["created"] is False
    assert screener.calls == calls


def test_changed_text_makes_a_new_version(client: TestClient, platform: dict) -> None:
    first = screen(client, platform, "post-4", BENIGN)
    second = screen(client, platform, "post-4", SURROGACY_AD)
    assert second["id"] != first["id"]
    assert (first["version"], second["version"]) == (1, 2)
    # The first version is still there, unchanged.
    assert client.get(f"/v1/items/{first['id']}", headers=platform).json()["decision"] == "pass"


def test_duplicates_inside_one_batch_are_stored_once(client: TestClient, platform: dict) -> None:
    item = {"external_id": "dup", "text": SURROGACY_AD}
    results = client.post("/v1/screen", json={"items": [item, item]}, headers=platform).json()["items"]
    assert results[0]["id"] == results[1]["id"]
    assert [r["created"] for r in results] == [True, False]


def test_same_external_id_in_two_tenants_are_separate_items(
    client: TestClient, platform: dict, other_platform: dict
) -> None:
    a = screen(client, platform, "shared-id", SURROGACY_AD)
    b = screen(client, other_platform, "shared-id", SURROGACY_AD)
    assert a["id"] != b["id"] and b["created"] is True


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"external_id": "x", "text": ""}, 422, "text: must not be empty or whitespace"),
        ({"external_id": "x", "text": " \n\t "}, 422, "text: must not be empty or whitespace"),
        ({"external_id": "x"}, 422, "text: Field required"),
        ({"external_id": "x", "text": 5}, 422, "text: Input should be a valid string"),
        ({"external_id": "x", "text": "hi", "colour": "red"}, 422, "colour: unknown field"),
        ({"external_id": "x", "text": "hi", "url": "ftp://x"}, 422, "url: must be an http"),
        ({"external_id": "x", "text": "hi", "posted_at": "yesterday"}, 422, "posted_at"),
        ({"external_id": "x", "text": "a\x00b"}, 422, "text: contains a NUL character"),
        ({"external_id": "x", "text": "hi", "metadata": {"a": [[[[[[[[[[1]]]]]]]]]]}}, 422, "nested deeper"),
        ({"items": []}, 422, "items: List should have at least 1 item"),
        ({"items": [{"external_id": "x", "text": "ok"}, {"external_id": "y", "text": ""}]}, 422, "items[1].text"),
        ([1, 2], 422, "Input should be a valid dictionary"),
    ],
)
def test_bad_input_gets_4xx_naming_the_problem(
    client: TestClient, platform: dict, body, status: int, message: str
) -> None:
    response = client.post("/v1/screen", json=body, headers=platform)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_invalid_json_is_422(client: TestClient, platform: dict) -> None:
    response = client.post(
        "/v1/screen", content=b'{"external_id": "x", "text": ', headers={**platform, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("body: invalid JSON")


def test_invalid_utf8_is_400(client: TestClient, platform: dict) -> None:
    body = b'{"external_id": "x", "text": "\xff\xfe"}'
    response = client.post("/v1/screen", content=body, headers={**platform, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert "not valid UTF-8" in response.json()["detail"]


def test_lone_surrogate_escape_is_refused(client: TestClient, platform: dict) -> None:
    body = '{"external_id": "x", "text": "bad \\ud800 text"}'
    response = client.post("/v1/screen", content=body, headers={**platform, "Content-Type": "application/json"})
    assert response.status_code == 422
    assert "lone surrogate" in response.json()["detail"]


def test_unknown_label_in_a_tenant_term_is_refused(client: TestClient, admin: dict) -> None:
    response = client.post("/v1/admin/tenants/alpha/terms", json={"kind": "block", "label": "spam", "term": "x"}, headers=admin)
    assert response.status_code == 422
    assert "label" in response.json()["detail"]


def test_text_over_the_limit_is_413(app, client: TestClient, platform: dict) -> None:
    limit = app.state.services.settings.max_text_chars
    response = client.post("/v1/screen", json={"external_id": "long", "text": "字" * (limit + 1)}, headers=platform)
    assert response.status_code == 413
    assert f"over the limit of {limit}" in response.json()["detail"]


def test_batch_over_the_limit_is_413(app, client: TestClient, platform: dict) -> None:
    app.state.services.settings.max_batch_items = 3
    items = [{"external_id": str(i), "text": BENIGN} for i in range(4)]
    response = client.post("/v1/screen", json={"items": items}, headers=platform)
    assert response.status_code == 413
    assert "batch of 4 items is over the limit of 3" in response.json()["detail"]


def test_body_over_the_byte_limit_is_413(app, client: TestClient, platform: dict) -> None:
    limit = app.state.services.settings.max_request_bytes
    body = json.dumps({"external_id": "x", "text": "a" * limit}).encode()
    response = client.post("/v1/screen", content=body, headers={**platform, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert "request body is over the limit" in response.json()["detail"]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing API key"),
        ({"X-API-Key": "jw_not_a_key"}, "unknown API key"),
        ({"Authorization": "Bearer jw_not_a_key"}, "unknown API key"),
    ],
)
def test_missing_or_wrong_key_is_401(client: TestClient, headers: dict, message: str) -> None:
    response = client.post("/v1/screen", json={"external_id": "x", "text": "hi"}, headers=headers)
    assert response.status_code == 401
    assert message in response.json()["detail"]


def test_bearer_token_works(client: TestClient, platform: dict) -> None:
    headers = {"Authorization": f"Bearer {platform['X-API-Key']}"}
    assert client.post("/v1/screen", json={"external_id": "x", "text": BENIGN}, headers=headers).status_code == 200


def test_revoked_key_is_refused(client: TestClient, admin: dict) -> None:
    created = client.post("/v1/admin/keys", json={"name": "tmp", "role": "platform", "tenant": "alpha"}, headers=admin).json()
    headers = {"X-API-Key": created["key"]}
    assert client.get("/v1/items", headers=headers).status_code == 200
    assert client.delete(f"/v1/admin/keys/{created['id']}", headers=admin).status_code == 200
    response = client.get("/v1/items", headers=headers)
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_reviewer_key_cannot_submit(client: TestClient, reviewer: dict) -> None:
    response = client.post("/v1/screen", json={"external_id": "x", "text": "hi"}, headers=reviewer)
    assert response.status_code == 403
    assert "platform" in response.json()["detail"]


def test_rate_limit_per_key_is_429_with_retry_after(client: TestClient) -> None:
    headers = create_key(client, "platform", "gamma", rate_limit_per_minute=3)
    statuses = [client.get("/v1/items", headers=headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/v1/items", headers=headers)
    assert "rate limit of 3 requests per minute" in response.json()["detail"]
    assert int(response.headers["Retry-After"]) >= 1


def test_tenant_terms_apply_to_the_next_request_without_restart(
    client: TestClient, platform: dict, other_platform: dict, admin: dict
) -> None:
    text = "新型暗语 某某服务 欢迎咨询"
    assert screen(client, platform, "t1", text)["decision"] == "pass"
    added = client.post(
        "/v1/admin/tenants/alpha/terms", json={"kind": "block", "label": "surrogacy", "term": "某某服务"}, headers=admin
    )
    assert added.status_code == 201, added.text
    flagged = screen(client, platform, "t2", text)
    assert flagged["decision"] == "block" and flagged["labels"] == ["surrogacy"]
    # Another tenant is unaffected.
    assert screen(client, other_platform, "t2", text)["decision"] == "pass"
    # Removing the term applies at once too.
    assert client.delete(f"/v1/admin/tenants/alpha/terms/{added.json()['id']}", headers=admin).status_code == 204
    assert screen(client, platform, "t3", text)["decision"] == "pass"


def test_tenant_allow_term_suppresses_a_hit(client: TestClient, platform: dict, admin: dict) -> None:
    text = "代孕法律讨论 讲座通知"
    assert screen(client, platform, "a1", text)["decision"] == "block"
    response = client.post("/v1/admin/tenants/alpha/terms", json={"kind": "allow", "term": "代孕法律讨论"}, headers=admin)
    assert response.status_code == 201
    assert screen(client, platform, "a2", text)["decision"] == "pass"


def test_term_the_lexicon_cannot_use_is_422(client: TestClient, admin: dict) -> None:
    response = client.post("/v1/admin/tenants/alpha/terms", json={"kind": "allow", "term": "!!!"}, headers=admin)
    assert response.status_code == 422
    assert "empty after normalising" in response.json()["detail"]


def test_metrics_count_decisions_per_label(client: TestClient, platform: dict) -> None:
    screen(client, platform, "m1", SURROGACY_AD)
    screen(client, platform, "m2", BENIGN)
    body = client.get("/metrics").text
    assert 'jingwang_screen_decisions_total{decision="block"} 1.0' in body
    assert 'jingwang_screen_flags_total{label="surrogacy"} 1.0' in body
    assert 'jingwang_http_request_duration_seconds_bucket{le="0.05",method="POST",route="/v1/screen"}' in body


def test_failure_mid_request_leaves_the_database_as_it_was(app, platform: dict, monkeypatch) -> None:
    from sqlalchemy import text

    from serve import crud
    from serve.db_models import ItemBand

    real_insert = crud._bulk_insert

    def failing_insert(session, model, rows):  # noqa: ANN001, ANN202 - test double
        if model is ItemBand:  # the last write of a screening request
            raise RuntimeError("disk full (simulated)")
        return real_insert(session, model, rows)

    monkeypatch.setattr(crud, "_bulk_insert", failing_insert)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/v1/screen", json={"external_id": "f1", "text": SURROGACY_AD}, headers=platform)
    assert response.status_code == 500
    with app.state.services.db.read() as session:
        for table in ("items", "item_contacts", "review_tasks", "clusters"):
            assert session.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0, table
        assert session.execute(text("SELECT count(*) FROM audit_log WHERE action = 'item.queue'")).scalar() == 0
