"""The review workflow: queue order, leases, decisions, double review, escalation, audit."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.serve.conftest import ADOPTION_POST, ORGAN_AD, SURROGACY_AD, create_key, screen


def claim(client: TestClient, headers: dict, **filters) -> dict | None:
    response = client.post("/v1/review/claim", json=filters or None, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["task"]


def decide(client: TestClient, headers: dict, task_id: int, decisions: dict, note: str | None = None):
    return client.post(
        f"/v1/review/tasks/{task_id}/decision", json={"decisions": decisions, "note": note}, headers=headers
    )


@pytest.fixture
def single_review(app) -> None:
    """Block-level items need one reviewer (double review off)."""
    app.state.services.settings.double_review_block = False


def test_queue_orders_block_before_review_then_score_then_age(
    client: TestClient, platform: dict, reviewer: dict
) -> None:
    review_low = screen(client, platform, "q1", ADOPTION_POST)  # review, 0.6
    review_high = screen(client, platform, "q2", "男婴 健康")  # review, 0.7
    block_old = screen(client, platform, "q3", ORGAN_AD)  # block, 0.95
    block_new = screen(client, platform, "q4", SURROGACY_AD)  # block, 0.95, newer
    tasks = client.get("/v1/review/queue", headers=reviewer).json()["tasks"]
    assert [t["item_id"] for t in tasks] == [block_old["id"], block_new["id"], review_high["id"], review_low["id"]]
    assert [t["priority"] for t in tasks] == ["block", "block", "review", "review"]


def test_queue_filters_by_label_tenant_and_source(
    client: TestClient, platform: dict, other_platform: dict, reviewer: dict
) -> None:
    a = screen(client, platform, "f1", SURROGACY_AD, source="forum")
    b = screen(client, platform, "f2", ORGAN_AD, source="market")
    c = screen(client, other_platform, "f3", SURROGACY_AD, source="forum")

    def ids(**params):
        return [t["item_id"] for t in client.get("/v1/review/queue", params=params, headers=reviewer).json()["tasks"]]

    assert sorted(ids(label="surrogacy")) == sorted([a["id"], c["id"]])
    assert ids(tenant="alpha", source="market") == [b["id"]]
    assert ids(tenant="beta") == [c["id"]]
    assert client.get("/v1/review/queue", params={"label": "spam"}, headers=reviewer).status_code == 422
    assert ids(until="2000-01-01T00:00:00Z") == []


def test_claim_leases_to_one_reviewer(client: TestClient, platform: dict, reviewer: dict, reviewer2: dict) -> None:
    screen(client, platform, "c1", SURROGACY_AD)
    first = claim(client, reviewer)
    assert first is not None and first["status"] == "claimed"
    assert claim(client, reviewer2) is None  # the only task is leased
    response = decide(client, reviewer2, first["id"], {"surrogacy": "confirm"})
    assert response.status_code == 409
    assert "not claimed by you" in response.json()["detail"]


def test_claim_respects_filters(client: TestClient, platform: dict, reviewer: dict) -> None:
    screen(client, platform, "cf1", SURROGACY_AD)
    organ = screen(client, platform, "cf2", ORGAN_AD)
    task = claim(client, reviewer, label="organ_trade")
    assert task["item_id"] == organ["id"]


def test_expired_lease_returns_the_task_to_the_queue(
    app, client: TestClient, platform: dict, reviewer: dict, reviewer2: dict
) -> None:
    app.state.services.settings.lease_seconds = 1
    screen(client, platform, "e1", SURROGACY_AD)
    first = claim(client, reviewer)
    with app.state.services.db.write() as session:
        session.execute(text("UPDATE review_tasks SET lease_expires_at = '2000-01-01 00:00:00+00:00'"))
    second = claim(client, reviewer2)
    assert second is not None and second["id"] == first["id"]
    # The first reviewer lost the lease: their decision is refused, not silently applied.
    assert decide(client, reviewer, first["id"], {"surrogacy": "confirm"}).status_code == 409


def test_single_review_confirm_closes_the_task(
    single_review, client: TestClient, platform: dict, reviewer: dict
) -> None:
    item = screen(client, platform, "s1", SURROGACY_AD)
    task = claim(client, reviewer)
    response = decide(client, reviewer, task["id"], {"surrogacy": "confirm"}, note="clear ad")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["item_review_status"] == "confirmed"
    assert body["confirmed_labels"] == ["surrogacy"]
    assert body["task"]["status"] == "done"
    stored = client.get(f"/v1/items/{item['id']}", headers=platform).json()
    assert stored["review_status"] == "confirmed" and stored["confirmed_labels"] == ["surrogacy"]
    again = decide(client, reviewer, task["id"], {"surrogacy": "reject"})
    assert again.status_code == 409 and "already decided" in again.json()["detail"]


def test_reject_marks_a_false_positive(client: TestClient, platform: dict, reviewer: dict) -> None:
    screen(client, platform, "r1", ADOPTION_POST)
    task = claim(client, reviewer)
    body = decide(client, reviewer, task["id"], {"illegal_adoption": "reject"}, note="pet post").json()
    assert body["item_review_status"] == "rejected" and body["confirmed_labels"] == []


def test_reviewer_may_add_a_missed_label(client: TestClient, platform: dict, reviewer: dict) -> None:
    screen(client, platform, "add1", ADOPTION_POST)
    task = claim(client, reviewer)
    body = decide(client, reviewer, task["id"], {"illegal_adoption": "confirm", "child_sale": "confirm"}).json()
    assert body["confirmed_labels"] == ["child_sale", "illegal_adoption"]


def test_every_flagged_label_needs_a_decision(client: TestClient, platform: dict, reviewer: dict) -> None:
    screen(client, platform, "m1", "代孕 送养")
    task = claim(client, reviewer)
    response = decide(client, reviewer, task["id"], {"surrogacy": "confirm"})
    assert response.status_code == 422
    assert "no decision for flagged label(s): illegal_adoption" in response.json()["detail"]


@pytest.mark.parametrize(
    ("decisions", "message"),
    [
        ({"spam": "confirm"}, "decisions.spam"),
        ({"surrogacy": "maybe"}, "decisions.surrogacy"),
        ({}, "decisions: Dictionary should have at least 1 item"),
    ],
)
def test_bad_decisions_are_422(client: TestClient, platform: dict, reviewer: dict, decisions, message) -> None:
    screen(client, platform, "bd", SURROGACY_AD)
    task = claim(client, reviewer)
    response = decide(client, reviewer, task["id"], decisions)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_double_review_agreement_settles_block_items(
    client: TestClient, platform: dict, reviewer: dict, reviewer2: dict
) -> None:
    screen(client, platform, "d1", SURROGACY_AD)
    task = claim(client, reviewer)
    assert task["required_reviews"] == 2
    first = decide(client, reviewer, task["id"], {"surrogacy": "confirm"}).json()
    assert first["task"]["status"] == "open" and first["item_review_status"] == "in_review"
    # The same reviewer cannot give the second review.
    assert claim(client, reviewer) is None
    second_task = claim(client, reviewer2)
    assert second_task["id"] == task["id"]
    second = decide(client, reviewer2, task["id"], {"surrogacy": "confirm"}).json()
    assert second["item_review_status"] == "confirmed" and second["task"]["status"] == "done"


def test_double_review_disagreement_escalates_to_an_admin(
    client: TestClient, platform: dict, reviewer: dict, reviewer2: dict, admin: dict
) -> None:
    item = screen(client, platform, "d2", SURROGACY_AD)
    task = claim(client, reviewer)
    decide(client, reviewer, task["id"], {"surrogacy": "confirm"})
    claim(client, reviewer2)
    second = decide(client, reviewer2, task["id"], {"surrogacy": "reject"}).json()
    assert second["item_review_status"] == "escalated"
    assert second["task"]["status"] == "escalated"
    # Reviewers no longer get it; an admin does, and decides for good.
    third = create_key(client, "reviewer")
    assert claim(client, third) is None
    admin_task = claim(client, admin)
    assert admin_task["id"] == task["id"]
    refused = decide(client, admin, task["id"], {"surrogacy": "escalate"})
    assert refused.status_code == 422
    final = decide(client, admin, task["id"], {"surrogacy": "confirm"}, note="confirmed after call").json()
    assert final["item_review_status"] == "confirmed"
    audit = client.get(f"/v1/items/{item['id']}/audit", headers=admin).json()["entries"]
    notes = [e["note"] for e in audit if e["action"] == "task.decide"]
    assert any(n and "reviewers disagree" in n for n in notes)


def test_escalate_action_goes_straight_to_admins(
    single_review, client: TestClient, platform: dict, reviewer: dict
) -> None:
    screen(client, platform, "x1", SURROGACY_AD)
    task = claim(client, reviewer)
    body = decide(client, reviewer, task["id"], {"surrogacy": "escalate"}, note="unsure").json()
    assert body["item_review_status"] == "escalated"
    assert client.get("/v1/review/queue", headers=reviewer).json()["tasks"] == []


def test_release_gives_the_task_back(client: TestClient, platform: dict, reviewer: dict, reviewer2: dict) -> None:
    screen(client, platform, "rl", SURROGACY_AD)
    task = claim(client, reviewer)
    assert client.post(f"/v1/review/tasks/{task['id']}/release", headers=reviewer2).status_code == 409
    assert client.post(f"/v1/review/tasks/{task['id']}/release", headers=reviewer).status_code == 200
    assert claim(client, reviewer2)["id"] == task["id"]


def test_audit_log_records_who_what_before_after(
    single_review, client: TestClient, platform: dict, reviewer: dict, admin: dict
) -> None:
    item = screen(client, platform, "a1", SURROGACY_AD)
    task = claim(client, reviewer)
    decide(client, reviewer, task["id"], {"surrogacy": "confirm"}, note="n1")
    entries = client.get(f"/v1/items/{item['id']}/audit", headers=reviewer).json()["entries"]
    assert [e["action"] for e in entries] == ["item.queue", "task.claim", "task.decide"]
    decided = entries[-1]
    assert decided["before"]["review_status"] == "pending"
    assert decided["after"]["review_status"] == "confirmed"
    assert decided["after"]["decisions"] == {"surrogacy": "confirm"}
    assert decided["note"] == "n1" and "reviewer" in decided["actor"]
    everything = client.get("/v1/audit", params={"item_id": item["id"]}, headers=admin).json()["entries"]
    assert len(everything) == 3


def test_audit_log_is_append_only_in_the_database(app, client: TestClient, platform: dict) -> None:
    screen(client, platform, "ao", SURROGACY_AD)
    db = app.state.services.db
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), db.write() as session:
            session.execute(text(statement))
    with db.read() as session:
        assert session.execute(text("SELECT count(*) FROM audit_log WHERE actor = 'someone else'")).scalar() == 0


def test_failed_decision_leaves_nothing_behind(app, client: TestClient, platform: dict, reviewer: dict) -> None:
    screen(client, platform, "fd", "代孕 送养")
    task = claim(client, reviewer)
    assert decide(client, reviewer, task["id"], {"surrogacy": "confirm"}).status_code == 422
    with app.state.services.db.read() as session:
        assert session.execute(text("SELECT count(*) FROM reviews")).scalar() == 0
        assert session.execute(text("SELECT count(*) FROM audit_log WHERE action = 'task.decide'")).scalar() == 0


def test_reviewer_stats(single_review, client: TestClient, platform: dict, reviewer: dict) -> None:
    screen(client, platform, "st1", SURROGACY_AD)
    screen(client, platform, "st2", ORGAN_AD)
    for decisions in ({"surrogacy": "confirm"}, {"organ_trade": "reject"}):
        task = claim(client, reviewer)
        label = task["labels"][0]
        decide(client, reviewer, task["id"], {label: next(iter(decisions.values()))})
    stats = client.get("/v1/review/stats", headers=reviewer).json()
    (row,) = stats["reviewers"]
    assert (row["reviews"], row["confirmed"], row["rejected"], row["escalated"]) == (2, 1, 1, 0)
    assert row["mean_seconds"] is not None and row["mean_seconds"] >= 0
    assert stats["queue"]["done"] == 2


def test_platform_keys_cannot_review(client: TestClient, platform: dict) -> None:
    response = client.get("/v1/review/queue", headers=platform)
    assert response.status_code == 403
    assert "reviewer" in response.json()["detail"]
