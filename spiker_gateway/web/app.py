"""The web run browser: a Starlette app over the gateway's own run manager, token auth and store.

Log in with a gateway token (kept in the gateway's memory; the browser's HttpOnly, SameSite=strict
cookie holds only a signed random session id; the token is checked against the token table on
every request, so a revoked token logs out at once); see
your runs, a run's live progress (polled JSON), report, plots, sweep table, VHDL files and a
zip of them; cancel a run. Another user's run answers 404 exactly like a missing one.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import posixpath
import secrets
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from spiker.store import ArtifactNotFound, ArtifactStore, StoreError
from spiker_gateway import artifacts
from spiker_gateway.auth import TokenAuth, Unauthenticated
from spiker_gateway.records import FINAL, RUN_ID_RE, RunNotFound
from spiker_gateway.report import RunReport
from spiker_gateway.runs import RunManager

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
#: largest file shown inline (VHDL page, sweep table); bigger ones are download links only
MAX_INLINE_BYTES = 2 * 1024 * 1024
#: sweep rows shown on the run page
MAX_SWEEP_ROWS = 200
#: runs per page of the runs list
RUNS_PER_PAGE = 50
#: session lifetime in seconds, and the most sessions kept at once
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000


class _NotFound(Exception):
    pass


class Sessions:
    """Login sessions kept in the gateway's memory: the browser's cookie holds only a random id
    (signed), never the token. At most ``limit`` sessions (the oldest go first), each ``ttl`` s."""

    def __init__(self, limit: int = MAX_SESSIONS, ttl: float = SESSION_SECONDS) -> None:
        self.limit, self.ttl = limit, ttl
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def new(self, token: str) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            while len(self._tokens) >= self.limit:
                self._tokens.pop(next(iter(self._tokens)))
            self._tokens[sid] = (token, time.monotonic() + self.ttl)
        return sid

    def token(self, sid: str | None) -> str | None:
        if not sid:
            return None
        with self._lock:
            entry = self._tokens.get(sid)
            if entry is None or entry[1] < time.monotonic():
                self._tokens.pop(sid, None)
                return None
            return entry[0]

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._tokens.pop(sid or "", None)


def _report(rec: dict[str, Any]) -> RunReport | None:
    """The run's report (None until it has one)."""
    return RunReport.from_dict(rec["report"]) if rec.get("report") else None


def _age(seconds: float) -> str:
    """``42 s``, ``5 min``, ``3 h``, ``2 d``."""
    s = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.0f} {unit}"
    return f"{s:.0f} s"


def _num(value: Any, digits: int = 3) -> str:
    from spiker.progress import fmt

    return "" if value is None else fmt(value, digits)


class WebApp:
    """Request handlers; every one resolves the user from the session first."""

    def __init__(self, manager: RunManager, auth: TokenAuth, store: ArtifactStore) -> None:
        self.manager = manager
        self.auth = auth
        self.store = store
        self.sessions = Sessions()
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters["num"] = _num

    # -- auth ------------------------------------------------------------------------------
    def user(self, request: Request) -> str | None:
        token = self.sessions.token(request.session.get("sid"))
        if not token:
            return None
        try:  # checked on every request: a token removed from the table (SIGHUP) logs out at once
            return self.auth.user_of((("authorization", f"Bearer {token}"),))
        except Unauthenticated:
            self.sessions.drop(request.session.get("sid"))
            request.session.clear()
            return None

    def login_page(self, request: Request) -> Response:
        if self.user(request):
            return RedirectResponse("/runs", status_code=303)
        return self.templates.TemplateResponse(request, "login.html", {"error": None})

    async def login(self, request: Request) -> Response:
        async with request.form(max_files=0, max_fields=4, max_part_size=4096) as form:
            token = str(form.get("token") or "").strip()[:1024]
        try:
            user = self.auth.user_of((("authorization", f"Bearer {token}"),))
        except Unauthenticated as exc:
            log.info("web: rejected login from %s: %s", request.client.host if request.client else "?", exc)
            return self.templates.TemplateResponse(request, "login.html", {"error": "unknown token"},
                                                   status_code=401)
        self.sessions.drop(request.session.get("sid"))
        request.session.clear()
        request.session["sid"] = self.sessions.new(token)
        log.info("web: %s logged in", user)
        return RedirectResponse("/runs", status_code=303)

    def logout(self, request: Request) -> Response:
        self.sessions.drop(request.session.get("sid"))
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # -- pages -----------------------------------------------------------------------------
    def _page(self, request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    def runs(self, request: Request, user: str) -> Response:
        now = time.time()
        page = request.query_params.get("page", "")
        try:
            listed: Any = self.manager.list(user, RUNS_PER_PAGE, page) if page else self.manager.list(user,
                                                                                                   RUNS_PER_PAGE)
        except ValueError:
            raise _NotFound(page) from None
        runs, next_page = listed if isinstance(listed, tuple) else (listed, "")  # paged run managers
        rows = [self._summary(user, run.run_id, now) for run in runs]
        return self._page(request, "runs.html", {"user": user, "runs": rows, "next_page": next_page})

    def _record(self, user: str, run_id: str) -> dict[str, Any]:
        if not RUN_ID_RE.fullmatch(run_id):
            raise _NotFound(run_id)
        try:
            handle = self.manager.handle(user, run_id)
        except RunNotFound:
            raise _NotFound(run_id) from None
        with handle.cond:
            return json.loads(json.dumps(handle.record))  # a snapshot

    def _summary(self, user: str, run_id: str, now: float) -> dict[str, Any]:
        rec = self._record(user, run_id)
        report = _report(rec)
        metrics = {s["name"]: s.get("metrics") or {} for s in rec.get("stages", [])}
        res = report.resources if report else {}
        sim = metrics.get("simulate", {})
        accuracy = report.hw_accuracy if report else sim.get("hw_accuracy")
        if accuracy is None:
            accuracy = metrics.get("train", {}).get("test_accuracy")
        return {"run_id": rec["run_id"], "name": rec.get("name", ""), "state": rec["state"],
                "accuracy": accuracy, "mismatches": report.mismatches if report else sim.get("mismatches"),
                "lut": res.get("lut"), "ff": res.get("ff"), "age": _age(now - rec.get("created_at", now)),
                "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rec.get("created_at", now)))}

    def run_page(self, request: Request, user: str) -> Response:
        run_id = request.path_params["run_id"]
        rec = self._record(user, run_id)
        files = artifacts.run_files(rec)
        report = _report(rec)
        vhdl = sorted(n.removeprefix("vhdl/") for n in files if n.startswith("vhdl/"))
        order = self._text(files.get("vhdl/files.txt"))
        if order:
            listed = [n for n in order.split() if n in vhdl]
            vhdl = listed + [n for n in vhdl if n not in listed]
        plots = sorted(n for n in files if n.startswith("plots/") and n.endswith(".png"))
        sweep_head, sweep_rows, sweep_total = self._sweep(files.get("optimize.sweep_csv"))
        context = {
            "user": user, "run": rec, "summary": self._summary(user, run_id, time.time()), "report": report,
            "final": rec["state"] in FINAL, "stages": rec.get("stages", []), "plots": plots, "vhdl": vhdl,
            "sweep_head": sweep_head, "sweep_rows": sweep_rows, "sweep_total": sweep_total,
            "report_md": self._text(files.get("report.md")), "downloads": sorted(
                n for n in files if artifacts_download_path(n) and not n.startswith(("vhdl/", "plots/"))),
            "resources": {k: v for k, v in (report.resources if report else {}).items() if v is not None},
        }
        return self._page(request, "run.html", context)

    def _text(self, key: str | None) -> str:
        if not key:
            return ""
        try:
            ref = self.store.ref_for(key)
            if ref.size > MAX_INLINE_BYTES:
                return ""
            return self.store.get_bytes(ref).decode("utf-8", "replace")
        except StoreError:
            return ""

    def _sweep(self, key: str | None) -> tuple[list[str], list[list[str]], int]:
        text = self._text(key)
        if not text:
            return [], [], 0
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            return [], [], 0
        head, body = rows[0], rows[1:]
        return head, [[_cell(c) for c in r] for r in body[:MAX_SWEEP_ROWS]], len(body)

    def vhdl_page(self, request: Request, user: str) -> Response:
        run_id, name = request.path_params["run_id"], request.path_params["name"]
        rec = self._record(user, run_id)
        files = artifacts.run_files(rec)
        key = files.get(f"vhdl/{name}")
        if key is None:
            raise _NotFound(name)
        vhdl = sorted(n.removeprefix("vhdl/") for n in files if n.startswith("vhdl/"))
        return self._page(request, "vhdl.html", {"user": user, "run": rec, "name": name, "vhdl": vhdl,
                                                 "code": self._text(key) or "(too large to show: download it)"})

    # -- files -----------------------------------------------------------------------------
    def file(self, request: Request, user: str) -> Response:
        run_id, name = request.path_params["run_id"], request.path_params["name"]
        self._record(user, run_id)  # 404 unless it is the user's run
        try:
            name, key = artifacts.resolve(self.manager, user, run_id, name)
            ref, chunks = artifacts.read_chunks(self.store, key)
        except (artifacts.ArtifactNotInRun, ArtifactNotFound):
            raise _NotFound(name) from None
        headers = {"Content-Length": str(ref.size), "X-Content-Type-Options": "nosniff"}
        if request.query_params.get("download"):
            local = artifacts_download_path(name) or name.replace("/", "_")
            headers["Content-Disposition"] = f'attachment; filename="{posixpath.basename(local)}"'
        # the background task removes the copy also when the browser leaves before the first chunk
        return StreamingResponse(chunks, media_type=artifacts.content_type(name), headers=headers,
                                 background=BackgroundTask(chunks.close))

    def vhdl_zip(self, request: Request, user: str) -> Response:
        run_id = request.path_params["run_id"]
        rec = self._record(user, run_id)
        files = {n: k for n, k in artifacts.run_files(rec).items() if n.startswith("vhdl/")}
        if not files:
            raise _NotFound("vhdl")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, key in sorted(files.items()):
                zf.writestr(f"{run_id}/{name}", self.store.get_bytes(self.store.ref_for(key)))
        return Response(buf.getvalue(), media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{run_id}-vhdl.zip"'})

    # -- live progress and cancel ----------------------------------------------------------
    def events(self, request: Request, user: str) -> Response:
        from spiker_gateway.events import event_text

        run_id = request.path_params["run_id"]
        self._record(user, run_id)
        handle = self.manager.handle(user, run_id)
        try:
            after = max(0, int(request.query_params.get("after", "0")))
        except ValueError:
            after = 0
        with handle.cond:
            batch = handle.events[after:]
            total = len(handle.events)
            state = handle.record["state"]
            stages = [{"name": s["name"], "state": s["state"], "seconds": round(float(s.get("seconds", 0.0)), 1),
                       "cached": bool(s.get("cached"))} for s in handle.record.get("stages", [])]
        lines = []
        for ev in batch:
            text = event_text(ev)
            if text is not None:
                lines.append(f"{time.strftime('%H:%M:%S', time.localtime(ev.time))} {text}")
        return JSONResponse({"lines": lines, "next": total, "state": state, "final": state in FINAL,
                             "stages": stages})

    def cancel(self, request: Request, user: str) -> Response:
        run_id = request.path_params["run_id"]
        self._record(user, run_id)
        self.manager.cancel(user, run_id)
        return RedirectResponse(f"/runs/{run_id}", status_code=303)


def artifacts_download_path(name: str) -> str | None:
    from spiker_gateway.run_files import download_path

    return download_path(name)


def _cell(text: str) -> str:
    """A sweep CSV cell, floats rounded to 4 digits."""
    try:
        value = float(text)
    except ValueError:
        return text
    return text if value.is_integer() and "." not in text else f"{value:.4f}"


def _guarded(app: WebApp, handler: Any) -> Any:
    """A route that needs a logged-in user (else a redirect to /login); 404 for others' runs."""
    def endpoint(request: Request) -> Response:
        user = app.user(request)
        if user is None:
            if request.url.path.startswith("/api/") or request.method != "GET":
                return JSONResponse({"error": "log in first"}, status_code=401)
            return RedirectResponse("/login", status_code=303)
        try:
            return handler(request, user)
        except (_NotFound, RunNotFound):
            return app._page(request, "error.html", {"user": user, "message": "no such run or file"}, 404)
        except StoreError as exc:
            return app._page(request, "error.html", {"user": user, "message": f"store unavailable: {exc}"}, 503)

    return endpoint


def create_app(manager: RunManager, auth: TokenAuth, store: ArtifactStore, secret: str | None = None,
               https_only: bool = False) -> Starlette:
    """The run browser's ASGI app (``secret`` signs the session cookie; random per process by default;
    ``https_only`` marks the cookie Secure, for a browser served over TLS)."""
    app = WebApp(manager, auth, store)
    routes = [
        Route("/", lambda request: RedirectResponse("/runs", status_code=303)),
        Route("/login", app.login_page, methods=["GET"]),
        Route("/login", app.login, methods=["POST"]),
        Route("/logout", app.logout, methods=["POST"]),
        Route("/runs", _guarded(app, app.runs)),
        Route("/runs/{run_id}", _guarded(app, app.run_page)),
        Route("/runs/{run_id}/vhdl.zip", _guarded(app, app.vhdl_zip)),
        Route("/runs/{run_id}/vhdl/{name}", _guarded(app, app.vhdl_page)),
        Route("/runs/{run_id}/files/{name:path}", _guarded(app, app.file)),
        Route("/runs/{run_id}/cancel", _guarded(app, app.cancel), methods=["POST"]),
        Route("/api/runs/{run_id}/events", _guarded(app, app.events)),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [Middleware(SessionMiddleware, secret_key=secret or secrets.token_urlsafe(32),
                             session_cookie="spiker_session", max_age=SESSION_SECONDS, same_site="strict",
                             https_only=https_only)]
    return Starlette(routes=routes, middleware=middleware)
