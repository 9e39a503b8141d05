"""The review console through plain HTTP (the browser test drives it in Chromium)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.serve.conftest import ADMIN_KEY, ADOPTION_POST, SURROGACY_AD, screen


def sign_in(client: TestClient, key: str):
    return client.post("/console/login", data={"key": key}, follow_redirects=False)


def csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)


@pytest.fixture
def signed_in(app, client: TestClient, reviewer: dict) -> TestClient:
    app.state.services.settings.double_review_block = False
    response = sign_in(client, reviewer["X-API-Key"])
    assert response.status_code == 303 and response.headers["location"] == "/console"
    return client


def test_pages_need_a_session(client: TestClient) -> None:
    for path in ("/console", "/console/stats", "/console/items/1"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/console/login"
    assert client.get("/", follow_redirects=False).headers["location"] == "/console"


def test_sign_in_refuses_bad_and_platform_keys(client: TestClient, platform: dict) -> None:
    assert "unknown API key" in sign_in(client, "jw_wrong").text
    assert "the console is for reviewer and admin keys" in sign_in(client, platform["X-API-Key"]).text


def test_review_an_item_in_the_console(signed_in: TestClient, platform: dict) -> None:
    client = signed_in
    item = screen(client, platform, "web1", SURROGACY_AD)
    screen(client, platform, "web2", ADOPTION_POST)  # shares the WeChat id
    queue = client.get("/console").text
    assert "专业代孕" in queue and "Claim next" in queue
    claimed = client.post("/console/claim", data={"csrf": csrf(queue)}, follow_redirects=False)
    assert claimed.headers["location"] == f"/console/items/{item['id']}"
    page = client.get(claimed.headers["location"]).text
    assert '<mark class="ev l-surrogacy" title="代孕">代孕</mark>' in page
    assert '<mark class="ev l-contact" title="contact">abc_test123</mark>' in page
    assert "also in 1 other item" in page  # linked by the shared contact
    assert 'id="decide-form"' in page
    decided = client.post(
        f"/console/tasks/{_task_id(page)}/decide",
        data={"csrf": csrf(page), "decision_surrogacy": "confirm", "note": "clear ad"},
        follow_redirects=True,
    )
    assert "decision recorded: confirm" in decided.text
    assert 'id="review-status">confirmed<' in decided.text
    assert "task.decide" in decided.text and "clear ad" in decided.text


def test_stale_form_is_refused(signed_in: TestClient, platform: dict) -> None:
    screen(signed_in, platform, "web3", SURROGACY_AD)
    response = signed_in.post("/console/claim", data={"csrf": "0" * 32}, follow_redirects=True)
    assert "bad CSRF token" in response.text
    assert "Claimed by you" not in response.text


def test_refused_decision_is_shown_not_lost(signed_in: TestClient, platform: dict) -> None:
    screen(signed_in, platform, "web4", "代孕 送养")
    queue = signed_in.get("/console").text
    page = signed_in.post("/console/claim", data={"csrf": csrf(queue)}, follow_redirects=True).text
    response = signed_in.post(
        f"/console/tasks/{_task_id(page)}/decide",
        data={"csrf": csrf(page), "decision_surrogacy": "confirm"},
        follow_redirects=True,
    )
    assert "no decision for flagged label(s): illegal_adoption" in response.text


def test_stats_page_draws_flags_per_label(signed_in: TestClient, platform: dict) -> None:
    screen(signed_in, platform, "web5", SURROGACY_AD)
    screen(signed_in, platform, "web6", ADOPTION_POST)
    page = signed_in.get("/console/stats").text
    assert "<svg" in page
    assert 'data-label="surrogacy" data-total="1"' in page
    assert 'data-label="illegal_adoption" data-total="1"' in page
    assert 'data-label="organ_trade" data-total="0"' in page


def test_admin_signs_in_too(client: TestClient) -> None:
    assert sign_in(client, ADMIN_KEY).status_code == 303


def _task_id(page: str) -> int:
    return int(re.search(r"/console/tasks/(\d+)/decide", page).group(1))


def test_console_referral_export_and_date_filter(signed_in: TestClient, platform: dict) -> None:
    item = screen(signed_in, platform, "web7", SURROGACY_AD)
    queue = signed_in.get("/console?since=2000-01-01").text
    assert "专业代孕" in queue
    assert "专业代孕" not in signed_in.get("/console?since=2999-01-01").text
    page = signed_in.post("/console/claim", data={"csrf": csrf(queue)}, follow_redirects=True).text
    signed_in.post(
        f"/console/tasks/{_task_id(page)}/decide",
        data={"csrf": csrf(page), "decision_surrogacy": "confirm"},
    )
    html = signed_in.get("/console/exports/referrals?format=html").text
    assert f"Item {item['id']}" in html and '<mark class="l-surrogacy">代孕</mark>' in html
    jsonl = signed_in.get("/console/exports/referrals?format=jsonl")
    assert jsonl.headers["content-disposition"].startswith("attachment")
    assert '"confirmed_labels": ["surrogacy"]' in jsonl.text
