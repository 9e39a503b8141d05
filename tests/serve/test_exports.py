"""Referral exports (JSONL, CSV, HTML) and training data from reviews."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import pytest
from fastapi.testclient import TestClient

from serve.cli_commands import export_training
from tests.serve.conftest import ADOPTION_POST, BENIGN, SURROGACY_AD, screen


@pytest.fixture
def reviewed(app, client: TestClient, platform: dict, reviewer: dict) -> dict:
    """One confirmed item (surrogacy), one rejected (adoption), one never flagged."""
    app.state.services.settings.double_review_block = False
    confirmed = screen(client, platform, "ex1", SURROGACY_AD, url="https://example.com/p/ex1", posted_at="2026-11-01T08:00:00+08:00")
    rejected = screen(client, platform, "ex2", ADOPTION_POST)
    screen(client, platform, "ex3", BENIGN)
    for _ in range(2):
        task = client.post("/v1/review/claim", headers=reviewer).json()["task"]
        action = "confirm" if task["item_id"] == confirmed["id"] else "reject"
        response = client.post(
            f"/v1/review/tasks/{task['id']}/decision",
            json={"decisions": {label: action for label in task["labels"]}, "note": f"{action}ed in test"},
            headers=reviewer,
        )
        assert response.status_code == 200, response.text
    return {"confirmed": confirmed, "rejected": rejected}


def test_referral_jsonl_has_everything_an_investigator_needs(client: TestClient, reviewer: dict, reviewed: dict) -> None:
    response = client.get("/v1/exports/referrals", params={"format": "jsonl"}, headers=reviewer)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    (record,) = [json.loads(line) for line in response.text.splitlines()]
    assert record["item_id"] == reviewed["confirmed"]["id"]
    assert record["url"] == "https://example.com/p/ex1"
    assert record["posted_at"] == "2026-11-01T00:00:00+00:00"
    assert record["screened_at"] and record["confirmed_at"]
    assert record["content_sha256"] == hashlib.sha256(SURROGACY_AD.encode()).hexdigest()
    assert record["confirmed_labels"] == ["surrogacy"] and record["confirmed_labels_zh"] == ["代孕"]
    assert {e["text"] for e in record["evidence"]} == {"代孕"}
    assert {c["value"] for c in record["contacts"]} == {"abc_test123", "13800000001"}
    chain = record["review_chain"]
    assert [r["outcome"] for r in chain["reviews"]] == ["confirm"]
    assert [a["action"] for a in chain["audit"]] == ["item.queue", "task.claim", "task.decide"]


def test_referral_csv_and_html(client: TestClient, reviewer: dict, reviewed: dict) -> None:
    rows = list(csv.DictReader(io.StringIO(client.get("/v1/exports/referrals?format=csv", headers=reviewer).text)))
    assert len(rows) == 1
    assert rows[0]["content_sha256"] == hashlib.sha256(SURROGACY_AD.encode()).hexdigest()
    assert json.loads(rows[0]["review_chain"])["reviews"][0]["note"] == "confirmed in test"
    html = client.get("/v1/exports/referrals?format=html", headers=reviewer)
    assert html.headers["content-type"].startswith("text/html")
    assert '<mark class="l-surrogacy">代孕</mark>' in html.text
    assert "https://example.com/p/ex1" in html.text and "confirmed in test" in html.text


def test_referral_export_filters_and_is_audited(client: TestClient, reviewer: dict, admin: dict, reviewed: dict) -> None:
    assert client.get("/v1/exports/referrals?label=organ_trade", headers=reviewer).text == ""
    assert client.get("/v1/exports/referrals?tenant=beta", headers=reviewer).text == ""
    entries = client.get("/v1/audit", params={"action": "export.referrals"}, headers=admin).json()["entries"]
    assert entries and entries[0]["after"]["items"] == 0


def test_platforms_cannot_export(client: TestClient, platform: dict) -> None:
    assert client.get("/v1/exports/referrals", headers=platform).status_code == 403


def test_export_training_writes_taxonomy_format(settings, client: TestClient, reviewed: dict, tmp_path) -> None:
    out = tmp_path / "reviewed.jsonl"
    counts = export_training(settings, out)
    assert counts == {"confirmed": 1, "rejected": 1}
    records = {r["text"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert records[SURROGACY_AD]["labels"] == ["surrogacy"]
    assert records[ADOPTION_POST]["labels"] == []
    assert BENIGN not in records  # never reviewed
    assert all({"id", "text", "labels"} <= set(r) for r in records.values())
    assert len({r["id"] for r in records.values()}) == 2


def test_training_endpoint_matches(client: TestClient, reviewer: dict, reviewed: dict) -> None:
    lines = client.get("/v1/exports/training", headers=reviewer).text.splitlines()
    assert sorted(json.loads(line)["labels"] for line in lines) == [[], ["surrogacy"]]
