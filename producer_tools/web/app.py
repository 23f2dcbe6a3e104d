"""The reviewers' web page: a Starlette app over the shared ``ReviewQueue``.

Pages: ``/`` (review, keyboard-first), ``/model`` (the served model's report and
the consumer's live counts), ``/login`` (when a token is configured). JSON API
under ``/api/`` for the page's script. Every response carries the security
headers; nothing is loaded from outside (the page's assets are in ``static/``).

Access: with ``review.token`` set, every page but ``/login``, ``/healthz`` and the
static assets needs the token: as a cookie set by ``/login`` (an HMAC of the
token, never the token itself), as ``Authorization: Bearer <token>``, or as basic
auth with the token as password. Without a token the app must be bound to a
loopback address (``check_binding``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from consumer.settings import Settings
from producer_tools.review_session import (
    Decision,
    Lease,
    ReviewQueue,
    request_text,
    review_reason,
    utc_age_seconds,
)
from producer_tools.web.model_info import LiveCounts, confusion_png, model_categories, model_summary

HERE = Path(__file__).resolve().parent
HOLDER_COOKIE = "ts_holder"
REVIEWER_COOKIE = "ts_reviewer"
AUTH_COOKIE = "ts_auth"
OPEN_PATHS = ("/login", "/healthz", "/static/")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
        " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class BindingError(ValueError):
    """The page would be reachable from other machines without a credential."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(settings: Settings, host: str) -> None:
    if not is_loopback(host) and settings.review.token is None:
        raise BindingError(
            f"the review page shows customer data: binding it to {host} needs a credential."
            " Set TICKETSORT_REVIEW__TOKEN (clients send it as a bearer token, as the basic-auth"
            " password, or on the login page), or bind to 127.0.0.1."
        )


def _auth_cookie_value(token: str) -> str:
    return hmac.new(token.encode(), b"ticketsort-review-session", hashlib.sha256).hexdigest()


def authorized(request: Request, token: str) -> bool:
    cookie = request.cookies.get(AUTH_COOKIE, "")
    if cookie and hmac.compare_digest(cookie, _auth_cookie_value(token)):
        return True
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return hmac.compare_digest(value.strip().encode(), token.encode())
    if scheme.lower() == "basic":
        try:
            _user, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(password.encode(), token.encode())
    return False


class Guard(BaseHTTPMiddleware):
    """Security headers on every response; the token check where one is configured."""

    def __init__(self, app: Any, token: str | None) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        response: Response
        if (
            self.token is not None
            and not path.startswith(OPEN_PATHS)
            and not authorized(request, self.token)
        ):
            if path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
                response = JSONResponse({"error": "a token is required"}, status_code=401)
                response.headers["WWW-Authenticate"] = 'Bearer realm="ticketsort review"'
            else:
                response = RedirectResponse("/login", status_code=303)
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def lease_json(lease: Lease, now: float) -> dict[str, Any]:
    request = lease.request
    ticket = request.ticket
    return {
        "lease_id": lease.id,
        "id": ticket.id,
        "subject": ticket.subject,
        "text": request_text(request),
        "original": ticket.body,
        "channel": ticket.channel,
        "language": ticket.language,
        "created_at": ticket.created_at.isoformat(),
        "age_s": round(utc_age_seconds(request)),
        "suggestions": [{"category": s.category, "score": s.score} for s in request.scores],
        "confidence": request.confidence,
        "threshold": request.threshold,
        "reason": review_reason(request),
        "attempts": request.attempts,
        "model_version": request.model_version,
        "lease_left_s": max(0, round(lease.expires_at - now)),
    }


def create_app(
    settings: Settings,
    queue: ReviewQueue | None = None,
    *,
    categories: list[str] | None = None,
) -> Starlette:
    """The app; it starts ``queue`` (or one of its own) on start-up and closes it on shutdown."""
    review = settings.review
    the_queue = queue or ReviewQueue(
        settings, review.group, lease_s=review.lease_s, prefetch=review.prefetch
    )
    token = review.token.get_secret_value() if review.token is not None else None
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    live = LiveCounts(review.metrics_url)
    fixed_categories = list(categories or [])

    def all_categories(extra: list[str] | None = None) -> list[str]:
        names = fixed_categories or model_categories(settings)
        for name in extra or []:
            if name not in names:
                names = [*names, name]
        return names

    def holder_of(request: Request) -> str:
        return request.cookies.get(HOLDER_COOKIE) or ""

    def reviewer_of(request: Request) -> str:
        return request.cookies.get(REVIEWER_COOKIE, "").strip()[:80]

    def with_holder(request: Request, response: Response) -> Response:
        if not request.cookies.get(HOLDER_COOKIE):
            response.set_cookie(
                HOLDER_COOKIE, secrets.token_hex(16), httponly=True, samesite="strict"
            )
        return response

    def progress(holder: str) -> dict[str, Any]:
        return {"answered": the_queue.answered_by(holder), "remaining": the_queue.remaining()}

    async def review_page(request: Request) -> Response:
        response = templates.TemplateResponse(
            request,
            "review.html",
            {"reviewer": reviewer_of(request), "page": "review"},
        )
        return with_holder(request, response)

    async def model_page(request: Request) -> Response:
        summary = await run_in_threadpool(model_summary, settings)
        counts = await run_in_threadpool(live.scrape)
        return templates.TemplateResponse(
            request,
            "model.html",
            {"model": summary, "live": counts, "reviewer": reviewer_of(request), "page": "model"},
        )

    async def confusion(request: Request) -> Response:
        path = confusion_png(settings)
        if path is None:
            return JSONResponse({"error": "no confusion matrix"}, status_code=404)
        return FileResponse(path, media_type="image/png")

    async def api_live(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(live.scrape))

    async def api_next(request: Request) -> Response:
        holder, reviewer = holder_of(request), reviewer_of(request)
        if not holder or not reviewer:
            return JSONResponse({"error": "say who you are first"}, status_code=400)
        try:
            wait = min(20.0, max(0.0, float(request.query_params.get("wait", "0"))))
        except ValueError:
            wait = 0.0
        lease = await run_in_threadpool(the_queue.lease, holder, reviewer, wait)
        ticket = lease_json(lease, the_queue.clock()) if lease is not None else None
        suggested = [s["category"] for s in ticket["suggestions"]] if ticket else []
        body = {
            "ticket": ticket,
            "categories": all_categories(suggested),
            "reviewer": reviewer,
            "progress": await run_in_threadpool(progress, holder),
        }
        return JSONResponse(body)

    async def api_answer(request: Request) -> Response:
        holder, reviewer = holder_of(request), reviewer_of(request)
        if not request.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse({"error": "send JSON"}, status_code=415)
        try:
            data = await request.json()
            lease_id, action = str(data["lease_id"]), str(data["action"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "send {lease_id, action[, label]}"}, status_code=400)
        if not reviewer:
            return JSONResponse({"error": "say who you are first"}, status_code=400)
        if action == "release":
            outcome = await run_in_threadpool(the_queue.release, lease_id)
        elif action in ("label", "skip"):
            label = data.get("label")
            if action == "label" and (not isinstance(label, str) or not label.strip()):
                return JSONResponse({"error": "a label needs a category"}, status_code=400)
            decision = Decision("label", label.strip()) if action == "label" else Decision("skip")
            # In a worker thread: a closed tab cancels the request, never the delivery.
            outcome = await run_in_threadpool(the_queue.answer, lease_id, decision, reviewer)
        else:
            return JSONResponse({"error": f"unknown action {action!r}"}, status_code=400)
        return JSONResponse(
            {
                "ok": outcome.ok,
                "status": outcome.status,
                "message": outcome.message,
                "progress": await run_in_threadpool(progress, holder),
            }
        )

    async def api_reviewer(request: Request) -> Response:
        try:
            name = str((await request.json())["name"]).strip()[:80]
        except (ValueError, KeyError, TypeError):
            name = ""
        if not name:
            return JSONResponse({"error": "a name is needed"}, status_code=400)
        response = JSONResponse({"reviewer": name})
        response.set_cookie(REVIEWER_COOKIE, name, httponly=True, samesite="strict")
        return with_holder(request, response)

    async def login_page(request: Request) -> Response:
        if token is None:
            return RedirectResponse("/", status_code=303)
        error = ""
        if request.method == "POST":
            form = await request.form()
            given = str(form.get("token", ""))
            if hmac.compare_digest(given.encode(), token.encode()):
                response = RedirectResponse("/", status_code=303)
                response.set_cookie(
                    AUTH_COOKIE, _auth_cookie_value(token), httponly=True, samesite="strict"
                )
                return response
            error = "wrong token"
        status = 401 if request.method == "POST" else 200
        return templates.TemplateResponse(
            request, "login.html", {"error": error, "page": "login"}, status_code=status
        )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": the_queue.error is None})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        the_queue.start()
        try:
            yield
        finally:
            await run_in_threadpool(the_queue.close)

    routes = [
        Route("/", review_page),
        Route("/model", model_page),
        Route("/model/confusion.png", confusion),
        Route("/login", login_page, methods=["GET", "POST"]),
        Route("/healthz", healthz),
        Route("/api/next", api_next),
        Route("/api/answer", api_answer, methods=["POST"]),
        Route("/api/reviewer", api_reviewer, methods=["POST"]),
        Route("/api/live", api_live),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(Guard, token=token)], lifespan=lifespan)
    app.state.queue = the_queue
    return app
