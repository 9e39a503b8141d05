"""Many reviewers claiming at once never get the same task; concurrent submissions store once."""

from __future__ import annotations

import threading
from collections import Counter

from fastapi import FastAPI

from serve import crud
from serve.db_models import ApiKey
from serve.schemas import ScreenItemIn
from tests.serve.conftest import SURROGACY_AD

THREADS = 16
TASKS = 60


def _keys(app: FastAPI, role: str, tenant: str | None, n: int) -> list[ApiKey]:
    with app.state.services.db.write() as session:
        return [
            crud.create_api_key(session, name=f"{role}{i}", role=role, tenant=tenant, actor=None)[0]
            for i in range(n)
        ]


def _run_at_once(target, args_list) -> None:  # noqa: ANN001
    barrier = threading.Barrier(len(args_list))
    errors: list[BaseException] = []

    def run(*args) -> None:  # noqa: ANN002
        barrier.wait()
        try:
            target(*args)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=args) for args in args_list]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


def test_concurrent_claims_never_hand_out_a_task_twice(app: FastAPI) -> None:
    services = app.state.services
    (platform,) = _keys(app, "platform", "alpha", 1)
    reviewers = _keys(app, "reviewer", None, THREADS)
    items = [ScreenItemIn(external_id=f"c{i}", text=f"{SURROGACY_AD} #{i}") for i in range(TASKS)]
    services.screening.screen(submitter=platform, items=items)

    claimed: list[tuple[int, int]] = []
    lock = threading.Lock()

    def claim_all(reviewer: ApiKey) -> None:
        while True:
            with services.db.write() as session:
                task = crud.claim_next(session, reviewer=reviewer, lease_seconds=600)
                if task is None:
                    return
                with lock:
                    claimed.append((task.id, reviewer.id))

    _run_at_once(claim_all, [(r,) for r in reviewers])
    counts = Counter(task_id for task_id, _ in claimed)
    assert len(counts) == TASKS, "every task is handed out"
    assert max(counts.values()) == 1, "no task is handed out twice"
    assert len({reviewer for _, reviewer in claimed}) > 1, "the work was spread over reviewers"


def test_concurrent_identical_submissions_store_one_item(app: FastAPI) -> None:
    services = app.state.services
    (platform,) = _keys(app, "platform", "alpha", 1)
    ids: list[int] = []
    lock = threading.Lock()

    def submit() -> None:
        outcome = services.screening.screen(
            submitter=platform, items=[ScreenItemIn(external_id="same", text=SURROGACY_AD)]
        )[0]
        with lock:
            ids.append(outcome.item.id)

    _run_at_once(submit, [() for _ in range(8)])
    assert len(ids) == 8 and len(set(ids)) == 1


def test_concurrent_new_versions_get_distinct_version_numbers(app: FastAPI) -> None:
    services = app.state.services
    (platform,) = _keys(app, "platform", "alpha", 1)
    versions: list[int] = []
    lock = threading.Lock()

    def submit(i: int) -> None:
        outcome = services.screening.screen(
            submitter=platform, items=[ScreenItemIn(external_id="edited", text=f"{SURROGACY_AD} edit {i}")]
        )[0]
        with lock:
            versions.append(outcome.item.version)

    _run_at_once(submit, [(i,) for i in range(8)])
    assert sorted(versions) == list(range(1, 9))
