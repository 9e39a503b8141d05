"""The review console end to end in headless Chromium (Debian's, through Playwright).

Skips when /usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from serve.main import create_app
from tests.serve.conftest import ADMIN_KEY, ADOPTION_POST, SURROGACY_AD, FakeScreener, make_settings

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def live_server(tmp_path) -> Iterator[tuple[str, object]]:
    """The app on a loopback port, served by uvicorn in a thread."""
    settings = make_settings(f"sqlite:///{tmp_path / 'browser.db'}", double_review_block=False)
    app = create_app(settings, screener=FakeScreener(), start_worker=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_reviewer_works_the_queue_with_the_keyboard(live_server, browser, tmp_path) -> None:
    base, app = live_server
    import httpx

    admin = {"X-API-Key": ADMIN_KEY}
    with httpx.Client(base_url=base, headers=admin) as http:
        platform = http.post("/v1/admin/keys", json={"name": "p", "role": "platform", "tenant": "alpha"}).json()["key"]
        reviewer = http.post("/v1/admin/keys", json={"name": "Reviewer Wang", "role": "reviewer"}).json()["key"]
        headers = {"X-API-Key": platform}
        first = http.post("/v1/screen", json={"external_id": "b1", "text": SURROGACY_AD}, headers=headers).json()
        http.post("/v1/screen", json={"external_id": "b2", "text": ADOPTION_POST}, headers=headers)

    page = browser.new_page()
    requests_elsewhere: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(base) else requests_elsewhere.append(r.url))

    page.goto(f"{base}/console")
    assert page.url.endswith("/console/login")
    page.fill("#key", "jw_wrong_key")
    page.click("button[type=submit]")
    assert "unknown API key" in page.inner_text(".error")
    page.fill("#key", reviewer)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console")
    assert "Reviewer Wang" in page.inner_text("header")
    assert page.locator("table.queue tbody tr").count() == 2

    page.keyboard.press("n")  # claim next: the block item comes first
    page.wait_for_url(f"{base}/console/items/{first['id']}")
    assert page.locator("mark.ev.l-surrogacy").first.inner_text() == "代孕"
    assert page.locator("mark.ev.l-contact").count() == 2
    assert "also in 1 other item" in page.inner_text(".contact[data-contact='abc_test123']")
    page.screenshot(path=str(tmp_path / "item.png"), full_page=True)

    page.keyboard.press("c")  # confirm every flagged label and submit
    page.wait_for_selector(".flash")
    assert "decision recorded: confirm" in page.inner_text(".flash")
    assert page.inner_text("#review-status") == "confirmed"
    assert "task.decide" in page.inner_text("table.audit")

    page.click("text=item 2")  # the linked item, by the shared contact
    page.wait_for_url(f"{base}/console/items/2")
    page.click("button:has-text('Claim this item')")
    page.wait_for_selector("#decide-form")
    page.keyboard.press("r")  # false positive
    page.wait_for_selector(".flash")
    assert page.inner_text("#review-status") == "rejected"

    page.goto(f"{base}/console/stats")
    assert page.locator("svg.chart polyline[data-label='surrogacy']").get_attribute("data-total") == "1"
    assert "Reviewer Wang" in page.inner_text("main")
    page.screenshot(path=str(tmp_path / "stats.png"), full_page=True)
    assert requests_elsewhere == [], "the console loads nothing from other hosts"
    with app.state.services.db.read() as session:
        from sqlalchemy import text

        assert session.execute(text("SELECT count(*) FROM reviews")).scalar() == 2
