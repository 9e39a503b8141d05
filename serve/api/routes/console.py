"""The web review console: server-rendered pages under ``/console`` (reviewers and admins).

Sign-in takes an API key and sets a signed, HTTP-only session cookie that names the key;
every request re-checks that the key is still active. Every form post carries a CSRF token
bound to the session. Pages use a little JavaScript (keyboard shortcuts) and no network
resources beyond this server.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from models.labels import CHINESE_NAMES, LABELS
from serve import crud, exports
from serve.api.deps import Services, authenticate
from serve.api.routes.review import reviewer_stats
from serve.charts import flags_per_day_svg, last_days
from serve.db_models import ApiKey, AuditEntry, Item, ItemContact, Review, ReviewTask, utcnow
from serve.errors import ServeError
from serve.schemas import MAX_ID
from serve.security import Role

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
COOKIE = "jw_session"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.globals.update(CHINESE_NAMES={k.value: v for k, v in CHINESE_NAMES.items()}, LABELS=[label.value for label in LABELS])
router = APIRouter(prefix="/console", include_in_schema=False)


class _SignIn(Exception):
    """Raised when the request has no valid console session."""


def _services(request: Request) -> Services:
    return request.app.state.services


def _reviewer(request: Request) -> ApiKey:
    services = _services(request)
    cookie = request.cookies.get(COOKIE, "")
    key_id = services.signer.loads(cookie) if cookie else None
    if key_id is None:
        raise _SignIn
    with services.db.read() as session:
        key = session.get(ApiKey, key_id)
    if key is None or key.revoked_at is not None or key.role == Role.PLATFORM:
        raise _SignIn
    return key


def _day(value: str | None) -> date | None:
    """A ``YYYY-MM-DD`` form value, or None when empty or malformed."""
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return {name: values[-1] for name, values in parse_qs(body, keep_blank_values=True).items()}


def _check_csrf(request: Request, form: dict[str, str]) -> None:
    cookie = request.cookies.get(COOKIE, "")
    if form.get("csrf") != _services(request).signer.csrf_token(cookie):
        raise _Redirect(_redirect("/console", "the form was stale (bad CSRF token); try again"))


def _page(request: Request, name: str, key: ApiKey | None, **context: Any) -> HTMLResponse:
    cookie = request.cookies.get(COOKIE, "")
    csrf = _services(request).signer.csrf_token(cookie) if cookie else ""
    return templates.TemplateResponse(
        request, name, {"me": key, "csrf": csrf, "message": request.query_params.get("msg"), **context}
    )


def _redirect(url: str, message: str | None = None) -> RedirectResponse:
    if message:
        url += ("&" if "?" in url else "?") + "msg=" + quote(message)
    return RedirectResponse(url, status_code=303)


async def _attempt(request: Request, work: Any, *, back: str) -> Any:
    """Run ``work`` in the thread pool; a `ServeError` becomes a redirect carrying its message."""
    try:
        return await run_in_threadpool(work)
    except ServeError as error:
        raise _Redirect(_redirect(back, error.message)) from None


class _Redirect(Exception):
    def __init__(self, response: RedirectResponse) -> None:
        self.response = response


def register(app: Any) -> None:
    """Turn console sign-in failures and refused actions into redirects."""

    @app.exception_handler(_SignIn)
    async def _to_login(_request: Request, _exc: _SignIn) -> Response:
        return _redirect("/console/login")

    @app.exception_handler(_Redirect)
    async def _to_page(_request: Request, exc: _Redirect) -> Response:
        return exc.response


ConsoleKey = Annotated[ApiKey, Depends(_reviewer)]


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    return _page(request, "login.html", None)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    services = _services(request)
    try:
        key = await run_in_threadpool(authenticate, services, form.get("key", "").strip())
    except ServeError as error:
        return _page(request, "login.html", None, error=error.message)
    if key.role == Role.PLATFORM:
        return _page(request, "login.html", None, error="the console is for reviewer and admin keys")
    response = _redirect("/console")
    response.set_cookie(
        COOKIE,
        services.signer.dumps(key.id),
        max_age=services.signer.max_age_seconds,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/console",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = _redirect("/console/login")
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("", response_class=HTMLResponse)
async def queue_page(request: Request, key: ConsoleKey) -> Response:
    """The queue, filtered by label, tenant and source; the reviewer's own claimed tasks on top."""
    params = request.query_params
    filters: dict[str, Any] = {name: params.get(name) or None for name in ("label", "tenant", "source")}
    if filters["label"] not in (None, *[label.value for label in LABELS]):
        filters["label"] = None
    since = _day(params.get("since"))
    filters["since"] = datetime.combine(since, datetime.min.time()) if since else None

    def load() -> dict[str, Any]:
        services = _services(request)
        with services.db.read() as session:
            query = crud.queue_query(**filters, include_escalated=key.role == Role.ADMIN).limit(100)
            tasks = list(session.scalars(query).unique())
            mine = list(
                session.scalars(
                    select(ReviewTask)
                    .where(ReviewTask.status == "claimed", ReviewTask.claimed_by == key.id)
                    .order_by(ReviewTask.claimed_at)
                ).unique()
            )
        return {"tasks": tasks, "mine": mine, "filters": {**filters, "since": since}, "now": utcnow()}

    return _page(request, "queue.html", key, **await run_in_threadpool(load))


@router.post("/claim")
async def claim_next(request: Request, key: ConsoleKey) -> Response:
    form = await _form(request)
    _check_csrf(request, form)
    label = form.get("label") or None
    if label not in (None, *[lab.value for lab in LABELS]):
        label = None

    def claim() -> ReviewTask | None:
        services = _services(request)
        with services.db.write() as session:
            return crud.claim_next(
                session,
                reviewer=key,
                lease_seconds=services.settings.lease_seconds,
                label=label,
                tenant=form.get("tenant") or None,
                source=form.get("source") or None,
            )

    task = await _attempt(request, claim, back="/console")
    if task is None:
        return _redirect("/console", "nothing waiting in the queue for these filters")
    return _redirect(f"/console/items/{task.item_id}")


@router.post("/tasks/{task_id}/claim")
async def claim_task(request: Request, key: ConsoleKey, task_id: int) -> Response:
    form = await _form(request)
    _check_csrf(request, form)

    def claim() -> ReviewTask:
        services = _services(request)
        with services.db.write() as session:
            return crud.claim_task(
                session, task_id=task_id, reviewer=key, lease_seconds=services.settings.lease_seconds
            )

    task = await _attempt(request, claim, back="/console")
    return _redirect(f"/console/items/{task.item_id}")


@router.post("/tasks/{task_id}/release")
async def release_task(request: Request, key: ConsoleKey, task_id: int) -> Response:
    form = await _form(request)
    _check_csrf(request, form)

    def release() -> None:
        with _services(request).db.write() as session:
            crud.release_task(session, task_id=task_id, reviewer=key)

    await _attempt(request, release, back="/console")
    return _redirect("/console", f"task {task_id} released")


@router.post("/tasks/{task_id}/decide")
async def decide(request: Request, key: ConsoleKey, task_id: int) -> Response:
    form = await _form(request)
    _check_csrf(request, form)
    decisions = {
        name.removeprefix("decision_"): value
        for name, value in form.items()
        if name.startswith("decision_") and value in ("confirm", "reject", "escalate")
    }
    decisions = {label: action for label, action in decisions.items() if label in {lab.value for lab in LABELS}}
    note = form.get("note", "").strip() or None

    def record() -> tuple[int, str]:
        services = _services(request)
        with services.db.write() as session:
            review, _task, item = crud.decide(
                session, task_id=task_id, reviewer=key, decisions=decisions, note=note
            )
            outcome, item_id = review.outcome, item.id
        services.metrics.reviews.labels(outcome).inc()
        return item_id, outcome

    item_id, outcome = await _attempt(request, record, back=request.headers.get("referer", "/console").split("?")[0])
    return _redirect(f"/console/items/{item_id}", f"decision recorded: {outcome}")


@router.get("/items/{item_id}", response_class=HTMLResponse)
async def item_page(request: Request, key: ConsoleKey, item_id: int) -> Response:
    """The item with evidence highlighted, the decision form, audit trail and linked items."""

    def load() -> dict[str, Any] | None:
        with _services(request).db.read() as session:
            item = session.get(Item, item_id) if 0 < item_id <= MAX_ID else None
            if item is None:
                return None
            task = session.scalar(select(ReviewTask).where(ReviewTask.item_id == item.id))
            reviews = list(session.scalars(select(Review).where(Review.item_id == item.id).order_by(Review.id)))
            audit = list(session.scalars(select(AuditEntry).where(AuditEntry.item_id == item.id).order_by(AuditEntry.id)))
            linked: dict[str, list[Item]] = {}
            for contact in item.contacts:
                others = session.scalars(
                    select(Item)
                    .where(
                        Item.id.in_(select(ItemContact.item_id).where(ItemContact.value == contact.value)),
                        Item.id != item.id,
                    )
                    .order_by(Item.id.desc())
                    .limit(50)
                )
                linked[contact.value] = list(others)
            cluster = (
                list(
                    session.scalars(
                        select(Item).where(Item.cluster_id == item.cluster_id, Item.id != item.id).order_by(Item.id).limit(50)
                    )
                )
                if item.cluster_id
                else []
            )
            spans = [
                *({"label": e["label"], "start": e["start"], "end": e["end"]} for e in item.evidence),
                *({"label": "contact", "start": c.start, "end": c.end} for c in item.contacts),
            ]
            holds = bool(
                task
                and task.status == "claimed"
                and task.claimed_by == key.id
            )
            return {
                "item": item,
                "task": task,
                "reviews": reviews,
                "audit": audit,
                "linked": linked,
                "cluster": cluster,
                "pieces": exports.highlight_spans(item.text, spans),
                "holds": holds,
                "decidable_labels": item.labels or [],
            }

    context = await run_in_threadpool(load)
    if context is None:
        return _page(request, "message.html", key, error=f"no item with id {item_id}")
    return _page(request, "item.html", key, **context)


@router.get("/exports/referrals")
async def referral_export(request: Request, key: ConsoleKey, format: str = "html") -> Response:  # noqa: A002
    """The referral export for a signed-in reviewer (the API needs the key in a header)."""
    if format not in ("html", "jsonl", "csv"):
        format = "html"  # noqa: A001

    def build() -> list[dict[str, Any]]:
        services = _services(request)
        with services.db.read() as session:
            records = exports.referral_records(session)
        with services.db.write() as session:
            crud.audit(session, actor=key, action="export.referrals", after={"format": format, "items": len(records)})
        return records

    records = await run_in_threadpool(build)
    if format == "html":
        return HTMLResponse(exports.to_html(records, generated_at=utcnow()))
    body = exports.to_csv(records) if format == "csv" else exports.to_jsonl(records)
    media_type = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson; charset=utf-8"
    filename = f"jingwang-referrals-{utcnow():%Y%m%dT%H%M%SZ}.{format}"
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/stats", response_class=HTMLResponse)
async def stats_page(request: Request, key: ConsoleKey) -> Response:
    """Flags per label per day (last 30 days) and reviewer statistics."""
    days = last_days(utcnow().date(), 30)

    def load() -> dict[str, Any]:
        with _services(request).db.read() as session:
            start = datetime.combine(days[0], datetime.min.time())
            rows = session.execute(
                select(Item.created_at, Item.labels).where(Item.decision != "pass", Item.created_at >= start)
            )
            counts: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for created_at, labels in rows:
                for label in labels:
                    counts[created_at.date()][label] += 1
            reviews = list(session.scalars(select(Review).order_by(Review.task_id, Review.stage)))
        return {
            "chart": flags_per_day_svg(counts, days=days),
            "reviewers": reviewer_stats(reviews),
            "since": days[0],
            "week_ago": utcnow() - timedelta(days=7),
        }

    return _page(request, "stats.html", key, **await run_in_threadpool(load))
